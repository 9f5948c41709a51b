"""The program's side, shaped like wandb's so `import sweepq as wandb` runs a W&B sweep script.

Inside a trial (the runner sets SWEEPQ_* in the environment) `init()` loads the trial's
parameters and `log()` writes to Redis in one round trip that also returns any stop request, so a
pruned trial learns it on its next `log()` as a `Stopped` exception (catch it to save a
checkpoint). Outside a sweep everything works in memory, so scripts stay runnable by hand.
"""

from __future__ import annotations

import atexit
import math
import numbers
import os
import time
from collections.abc import Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sweepq.channel import TrialLink

__all__ = ["Config", "Run", "Stopped", "finish", "finish_current", "init", "log"]


class Stopped(Exception):  # noqa: N818 - the name users catch, as in "the trial was stopped"
    """The sweep asked this trial to stop (pruned, killed, or superseded). Catch it to save a
    checkpoint; the runner ends the program after its grace period either way."""


class Config(MutableMapping[str, Any]):
    """Parameters with item and attribute access; nested groups are Configs too."""

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_data", {})
        self.update(data or {})

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = Config(value) if isinstance(value, Mapping) else value

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, key: str) -> Any:
        try:
            return self._data[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __repr__(self) -> str:
        return f"Config({self.as_dict()!r})"

    def update(self, *args: Any, allow_val_change: bool | None = None, **kwargs: Any) -> None:
        """Merge, nested groups included (wandb's `allow_val_change` is accepted and ignored)."""
        for key, value in dict(*args, **kwargs).items():
            current = self._data.get(key)
            if isinstance(current, Config) and isinstance(value, Mapping):
                current.update(value)
            else:
                self[key] = value

    def as_dict(self) -> dict[str, Any]:
        return {k: v.as_dict() if isinstance(v, Config) else v for k, v in self._data.items()}


class Run:
    """One trial attempt as the program sees it (or a standalone run outside any sweep)."""

    def __init__(self, config: Mapping[str, Any], *, name: str | None = None) -> None:
        self.config = Config(config)
        self.summary: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []
        self.name = name
        self.id = name or f"local-{os.getpid()}"
        self.sweep_id: str | None = None
        self.number: int | None = None
        self._pending: dict[str, Any] = {}
        self._step = 0
        self._finished = False
        self._link: TrialLink | None = None
        self._metric: str | None = None
        self._attempt = 0
        self._stop_checked = 0.0
        self._stop = False

    # --- wandb-shaped API ---------------------------------------------------------------------

    def log(self, data: Mapping[str, Any], step: int | None = None, commit: bool = True) -> None:
        """Record one row; with commit=False rows merge until the next committing call."""
        if self._finished:
            raise RuntimeError("log() after finish()")
        self._pending.update(data)
        if step is not None:
            self._step = int(step)
        if not commit:
            return
        row, self._pending = self._pending, {}
        self.history.append(row)
        self.summary.update(row)
        step_now = self._step
        self._step += 1
        if self._link is not None:
            self._send(row, step_now)

    def finish(self, exit_code: int | None = None) -> None:
        if self._finished:
            return
        if self._pending:
            self.log({})
        self._finished = True
        if self._link is not None:
            import json

            self._link.annotate(summary=json.dumps(self.summary, default=str))

    @property
    def should_stop(self) -> bool:
        """Check for a stop request without raising (asks at most every 0.2 s)."""
        if self._link is None or self._stop:
            return self._stop
        now = time.monotonic()
        if now - self._stop_checked > 0.2:
            self._stop_checked = now
            self._stop = self._link.must_stop()
        return self._stop

    def mark_preempting(self) -> None:
        """Say this run is being preempted: when it exits it is queued again, not failed."""
        if self._link is not None:
            self._link.annotate(preempting=1)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.finish()

    # --- inside a sweep -----------------------------------------------------------------------

    def _attach(self, link: TrialLink) -> None:
        trial = link.attach()
        self._link = link
        self.sweep_id, self.number, self._attempt = trial.sweep_id, trial.number, trial.attempt
        self._metric = trial.metric
        self.id = f"{self.sweep_id}-{self.number}"
        self.name = self.name or self.id
        self.config.update(trial.params)  # sweep parameters override the script's defaults
        link.annotate(sdk=1)

    def _send(self, row: Mapping[str, Any], step: int) -> None:
        assert self._link is not None
        value = _number(_lookup(row, self._metric)) if self._metric else None
        state, stop = self._link.log(step, row, value)
        if stop or state != "running":
            self._stop = True
            why = {"prune": "pruned", "kill": "killed", "cancel": "cancelled"}.get(stop, state)
            raise Stopped(f"trial {self.id} was stopped ({why})")


def _lookup(row: Mapping[str, Any], name: str) -> Any:
    """The metric by its exact key, else by a dotted path into nested dicts."""
    if name in row:
        return row[name]
    node: Any = row
    for part in name.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _number(value: Any) -> float | None:
    """A finite number for decisions; anything else (strings, NaN, tensors of many) is None."""
    if isinstance(value, bool) or value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, numbers.Number):
        try:
            value = value.item()
        except (ValueError, TypeError):
            return None
    if not isinstance(value, numbers.Real):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


_current: Run | None = None


def init(config: Mapping[str, Any] | None = None, *, name: str | None = None, **_wandb_kwargs: Any) -> Run:
    """Start a run: inside a sweep trial it carries the trial's parameters; outside, `config`."""
    global _current
    if _current is not None and not _current._finished:
        return _current
    run = Run(config or {}, name=name)
    from sweepq.channel import link_from_env

    link = link_from_env()
    if link is not None:
        run._attach(link)
    _current = run
    return run


def log(data: Mapping[str, Any], step: int | None = None, commit: bool = True) -> None:
    (_current or init()).log(data, step=step, commit=commit)


def finish(exit_code: int | None = None) -> None:
    finish_current()


def finish_current() -> None:
    global _current
    if _current is not None:
        run, _current = _current, None
        run.finish()


atexit.register(finish_current)
