"""A trial's command line from the sweep's `command` macros: an argv list, never a shell string.

The rules are those of W&B's agent (`wandb_agent.py`, `sweeps/utils.py`), so a W&B config runs
the same program with the same arguments:
- `${envvar:NAME}` is replaced inside any element first (an unset NAME becomes the text NAME,
  as W&B does);
- then an element that is wholly a macro is replaced by zero or more elements; an unknown
  wholly-macro element is dropped; anything else is passed as written.
- Arguments come from the run's top-level keys in order; a nested group is one argument whose
  value is its dict, rendered with `str()` (`--optimizer={'lr': 0.1}`) exactly as W&B renders
  it; `${args_json}` / `${args_json_file}` carry the nested dict as JSON.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from sweepq.config import SweepConfig
from sweepq.errors import ConfigError, Violation

__all__ = ["ARGS_JSON_FILE", "MACROS", "args_json", "needs_args_json_file", "render"]

ARGS_JSON_FILE = "${args_json_file}"
_ENVVAR = re.compile(r"\$\{envvar:([A-Z0-9_]*)\}")


def args_json(params: Mapping[str, Any]) -> str:
    """The JSON text of `${args_json}` and of the `${args_json_file}` file."""
    return json.dumps(dict(params))


def needs_args_json_file(config: SweepConfig) -> bool:
    """Whether the runner must write `args_json(params)` to a file before `render`."""
    return ARGS_JSON_FILE in config.command


def _flags(params: Mapping[str, Any], fmt: Callable[[str, Any], list[str]]) -> list[str]:
    return [part for key, value in params.items() for part in fmt(key, value)]


def _no_boolean(key: str, value: Any) -> list[str]:
    """True -> --k, False -> nothing: for argparse's store_true flags."""
    if isinstance(value, bool):
        return [f"--{key}"] if value else []
    return [f"--{key}={value}"]


_ARGS: dict[str, Callable[[str, Any], list[str]]] = {
    "args": lambda k, v: [f"--{k}={v}"],
    "args_no_equals": lambda k, v: [f"--{k}", str(v)],
    "args_no_hyphens": lambda k, v: [f"{k}={v}"],
    "args_no_boolean_flags": _no_boolean,
    "args_append_hydra": lambda k, v: [f"+{k}={v}"],
    "args_override_hydra": lambda k, v: [f"++{k}={v}"],
}
MACROS: tuple[str, ...] = (
    "env",
    "interpreter",
    "program",
    *_ARGS,
    "args_json",
    "args_json_file",
)


def _expand_envvars(part: str, environ: Mapping[str, str]) -> str:
    return _ENVVAR.sub(lambda m: environ.get(m.group(1), m.group(1)), part)


def _macro(
    name: str,
    config: SweepConfig,
    params: Mapping[str, Any],
    *,
    args_json_file: str | None,
    interpreter: str,
) -> list[str]:
    if name in _ARGS:
        return _flags(params, _ARGS[name])
    if name == "env":
        return ["/usr/bin/env"]
    if name == "interpreter":
        return [interpreter]
    if name == "program":
        if config.program is None:
            raise ConfigError([Violation(("program",), "required: the command uses ${program}")])
        return [config.program]
    if name == "args_json":
        return [args_json(params)]
    if name == "args_json_file":
        if args_json_file is None:
            raise ValueError("the command uses ${args_json_file}: pass args_json_file=path")
        return [args_json_file]
    return []  # an unknown macro: W&B drops the element


def render(
    config: SweepConfig,
    params: Mapping[str, Any],
    *,
    args_json_file: str | None = None,
    environ: Mapping[str, str] | None = None,
    interpreter: str = "python",
) -> list[str]:
    """The argv to exec for one trial whose (nested) parameters are `params`.

    `interpreter` is what `${interpreter}` becomes: "python" as in W&B, or e.g. sys.executable
    for a worker whose PATH does not lead to the right environment.
    """
    env = os.environ if environ is None else environ
    argv: list[str] = []
    for element in config.command:
        part = _expand_envvars(element, env)
        if part.startswith("${") and part.endswith("}"):
            argv += _macro(part[2:-1], config, params, args_json_file=args_json_file, interpreter=interpreter)
        else:
            argv.append(part)
    return argv
