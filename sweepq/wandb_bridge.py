"""The zero-change path: a trial program that does `import wandb` gets what W&B's agent gives it.

W&B's agent (`wandb/wandb_agent.py`, `_command_run`) starts each run with `WANDB_SWEEP_ID`,
`WANDB_RUN_ID` and `WANDB_SWEEP_PARAM_PATH`, a YAML file `{name: {value: v}}` that
`wandb.init` reads (`wandb_setup.config` -> `_sweep_config`) and lays over the script's own
config, so `wandb.config` holds the sweep's values whatever the script's arguments. The runner
gives every subprocess trial the same (`program_env`), and puts `sweepq/_wandb_hook` first on
its PYTHONPATH: that sitecustomize waits for `import wandb` and then calls `patch`, which
connects the real `wandb.init`, `Run.log` and `Run.finish` to the trial (`sweepq.sdk`), so
every `wandb.log` value reaches sweepq as if `sweepq.log` had been called: steps, `commit`,
nested keys and `val/loss` names included. A program that never imports wandb pays one finder
on `sys.meta_path` (measured in tests/test_wandb_bridge.py).

W&B's own logging is kept when the user has W&B credentials (an API key in the environment or
in ~/.netrc) or chose a `WANDB_MODE`: then W&B is the dashboard and sweepq the controller, and
`WANDB_SWEEP_ID` is not set (W&B's server would look for a sweep of that id and refuse the run).
With no credentials and no `WANDB_MODE`, the trial runs with `WANDB_MODE=disabled`: no login
prompt, no network, no wandb-core service process (about 0.5 s and one process less per trial
than `offline`) and no run folders piling up for an account that does not exist; set
`WANDB_MODE=offline` on the workers to keep W&B's local run files anyway.

A stop request (hyperband, `sweepq kill`) reaches the program twice: the next `wandb.log`
raises `sweepq.Stopped` (as `sweepq.log` does), and the runner sends SIGTERM to the program's
process group, then SIGKILL after the grace period, as W&B's agent does (`_command_stop`).
"""

from __future__ import annotations

import atexit
import functools
import netrc
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlparse

from sweepq.model import Sweep, Trial

__all__ = ["HOOK_DIR", "has_credentials", "patch", "program_env", "run_id", "wandb_mode", "write_param_file"]

HOOK_DIR = Path(__file__).resolve().with_name("_wandb_hook")
_PATCHED = "_sweepq_patched"


def has_credentials(env: Mapping[str, str]) -> bool:
    """Whether wandb would find an API key: the environment, or ~/.netrc for its host."""
    if env.get("WANDB_API_KEY") or env.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(env.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or "api.wandb.ai"
    home = env.get("HOME") or os.path.expanduser("~")
    candidates = [env["NETRC"]] if env.get("NETRC") else [os.path.join(home, ".netrc"), os.path.join(home, "_netrc")]
    for path in candidates:
        try:
            if netrc.netrc(os.path.expanduser(path)).authenticators(host):
                return True
        except (OSError, netrc.NetrcParseError):
            continue
    return False


def wandb_mode(env: Mapping[str, str]) -> str | None:
    """The WANDB_MODE a trial gets: the user's, none (W&B's default, online) with credentials,
    else disabled."""
    if env.get("WANDB_MODE"):
        return None
    if str(env.get("WANDB_DISABLED", "")).lower() in ("true", "1", "yes"):
        return None  # W&B's older spelling of disabled: left to wandb
    return None if has_credentials(env) else "disabled"


def run_id(trial: Trial) -> str:
    """Unique per attempt (a W&B project refuses a second run with the same id)."""
    return f"{trial.sweep_id}-{trial.number}-{trial.attempt}"


def write_param_file(path: Path, params: Mapping[str, Any]) -> None:
    """W&B's format (`config_util.save_config_file_from_dict`): `wandb_version: 1` then
    `{name: {value: v}}`; nested groups are one value holding a mapping, as W&B's agent sends."""
    import yaml  # type: ignore[import-untyped,unused-ignore]

    body = {k: {"value": v} for k, v in params.items()}
    text = "wandb_version: 1\n"
    if body:
        # libyaml's emitter where PyYAML has it: the pure-Python one costs ~1 ms per trial.
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        text += "\n" + yaml.dump(body, Dumper=dumper, default_flow_style=False, allow_unicode=True, sort_keys=False)
    path.write_text(text, encoding="utf-8")


def program_env(tmp: Path, sweep: Sweep, trial: Trial, env: Mapping[str, str]) -> dict[str, str]:
    """The W&B agent's environment for one subprocess trial, plus the import hook."""
    param_file = tmp / "wandb-sweep-params.yaml"
    write_param_file(param_file, trial.params)
    out = {"WANDB_SWEEP_PARAM_PATH": str(param_file), "WANDB_RUN_ID": run_id(trial)}
    mode = wandb_mode(env)
    if mode is not None:
        out["WANDB_MODE"] = mode
    if mode == "disabled" or env.get("WANDB_MODE") in ("offline", "disabled", "dryrun"):
        out["WANDB_SWEEP_ID"] = trial.sweep_id
    else:  # W&B as the dashboard: the runs of one sweepq sweep grouped in its project
        out["WANDB_RUN_GROUP"] = env.get("WANDB_RUN_GROUP") or f"sweepq-{trial.sweep_id}"
        for key, var in (("project", "WANDB_PROJECT"), ("entity", "WANDB_ENTITY")):
            if sweep.raw_config.get(key) and not env.get(var):
                out[var] = str(sweep.raw_config[key])
    previous = env.get("PYTHONPATH")
    out["PYTHONPATH"] = str(HOOK_DIR) + (os.pathsep + previous if previous else "")
    return out


# --- inside the program -------------------------------------------------------------------------


def activate_in_process() -> None:
    """Function mode (the trial runs in this process): patch wandb now or when imported."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("_sweepq_wandb_hook", HOOK_DIR / "sitecustomize.py")
    if spec is None or spec.loader is None:
        return
    hook = sys.modules.get("_sweepq_wandb_hook")
    if hook is None:
        hook = importlib.util.module_from_spec(spec)
        sys.modules["_sweepq_wandb_hook"] = hook
        spec.loader.exec_module(hook)
    hook.install()


def finish_in_process() -> None:
    """Function mode: a wandb run the function left open is finished with its trial, so the
    next trial's `wandb.init()` starts a new run (W&B's agent tears wandb down between runs)."""
    run = _bridged.get("run")
    if run is not None:
        try:
            run.finish()
        except Exception:  # noqa: BLE001 - the trial's outcome is already decided
            _bridged.pop("run", None)


def in_trial() -> bool:
    return bool(os.environ.get("SWEEPQ_SWEEP_ID") and os.environ.get("SWEEPQ_TRIAL"))


def patch(wandb: ModuleType) -> None:
    """Connect the real wandb package to the trial this process runs (idempotent)."""
    if getattr(wandb, _PATCHED, False):
        return
    setattr(wandb, _PATCHED, True)
    wandb.init = _wrap_init(wandb.init)  # type: ignore[attr-defined]
    from wandb.sdk import wandb_run

    classes: list[type] = [wandb_run.Run]
    try:
        from wandb.sdk.lib import noop_run

        classes.append(noop_run.NoopRun)
    except ImportError:  # older wandb: a disabled run is a RunDisabled without our log
        pass
    for cls in classes:
        if "log" in cls.__dict__:
            cls.log = _wrap_log(cls.__dict__["log"])  # type: ignore[attr-defined]
        if "finish" in cls.__dict__:
            cls.finish = _wrap_finish(cls.__dict__["finish"])  # type: ignore[attr-defined]
        if "define_metric" in cls.__dict__:
            cls.define_metric = _wrap_define_metric(cls.__dict__["define_metric"])  # type: ignore[attr-defined]


_bridged: dict[str, Any] = {}  # the wandb run connected to this trial: {"run": run}


def _wrap_init(real_init: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(real_init)
    def init(*args: Any, **kwargs: Any) -> Any:
        if not in_trial():
            return real_init(*args, **kwargs)
        mode = wandb_mode(os.environ)
        if mode is not None and "mode" not in kwargs:
            kwargs["mode"] = mode  # function mode: the worker's environment has no WANDB_MODE
        run = real_init(*args, **kwargs)
        _attach(run)
        return run

    return init


def _attach(run: Any) -> None:
    from sweepq import sdk

    current = sdk.current()
    if current is None or current._finished:
        current = sdk.init()
    _bridged["run"] = run
    try:  # function mode has no parameter file: lay the sweep's values over the script's
        run.config.update(current.config.as_dict(), allow_val_change=True)
    except Exception:  # noqa: BLE001 - wandb already has them from WANDB_SWEEP_PARAM_PATH
        pass
    atexit.register(_sync_summary, run)  # runs before sdk's own atexit finish (LIFO)


def _wrap_log(real_log: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(real_log)
    def log(self: Any, data: Mapping[str, Any], step: int | None = None, commit: bool | None = None, **kw: Any) -> Any:
        result = real_log(self, data, step=step, commit=commit, **kw)  # W&B first: its dashboard sees the row
        if _bridged.get("run") is self:
            from sweepq import sdk

            current = sdk.current()
            if current is not None and not current._finished:
                current.log(data, step=step, commit=commit)  # raises sweepq.Stopped on a stop request
        return result

    return log


def _wrap_define_metric(real: Callable[..., Any]) -> Callable[..., Any]:
    """`summary="min"` and friends shape sweepq's summary of the trial too."""

    @functools.wraps(real)
    def define_metric(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        result = real(self, name, *args, **kwargs)
        if _bridged.get("run") is self and kwargs.get("summary"):
            from sweepq import sdk

            current = sdk.current()
            if current is not None:
                current.define_metric(name, summary=kwargs["summary"], goal=kwargs.get("goal"))
        return result

    return define_metric


def _wrap_finish(real_finish: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(real_finish)
    def finish(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _bridged.get("run") is self:
            _sync_summary(self)
            from sweepq import sdk

            _bridged.pop("run", None)
            sdk.finish_current()
        return real_finish(self, *args, **kwargs)

    return finish


def _sync_summary(run: Any) -> None:
    """Keys the script set on `run.summary` itself (a best accuracy, say) join sweepq's summary."""
    from sweepq import sdk

    current = sdk.current()
    if current is None or current._finished or id(_bridged.get("run")) != id(run):
        return
    try:
        items = dict(run.summary.items())
    except Exception:  # noqa: BLE001 - a summary we cannot read is not worth failing the trial
        return
    from sweepq.sdk import _plain_row

    summary = current.summary
    extra = {k: v for k, v in items.items() if not str(k).startswith("_") and k not in summary}
    summary.update(_plain_row(extra))
