"""One read of a sweep shaped for people: its searchable parameters (kind, label), each trial's
flat values, the best trial, and each trial's metric curve by step.

Tables, the HTML report and the live dashboard all read through here, so they agree on what a
parameter column is and which trial is best.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sweepq.config import SweepConfig
from sweepq.model import Sweep, Trial
from sweepq.store import Store

__all__ = ["Curves", "Param", "SweepView", "best_of", "config_of", "load_view", "metric_of"]

Kind = Literal["log", "linear", "categorical"]
# Distributions sampled evenly in log space: their axes are logarithmic.
_LOG = {"log_uniform", "log_uniform_values", "q_log_uniform", "q_log_uniform_values", "log_normal", "q_log_normal"}


def config_of(sweep: Sweep) -> SweepConfig:
    """The sweep's parsed config (parsed once per record, never validated again)."""
    return sweep.config


def metric_of(sweep: Sweep) -> tuple[str | None, str]:
    """(metric name or None, goal) of a sweep."""
    metric = sweep.metric
    return (None, "minimize") if metric is None else (metric.name, metric.goal)


def best_of(goal: str, trials: Iterable[Trial]) -> Trial | None:
    """The trial with the best logged value of the metric (ties: the earliest trial)."""
    sign = -1.0 if goal == "maximize" else 1.0
    scored = [t for t in trials if t.best is not None]
    return min(scored, key=lambda t: (sign * (t.best or 0.0), t.number)) if scored else None


@dataclass(frozen=True)
class Param:
    """A searchable parameter: constants are left out of every view (they explain nothing)."""

    path: tuple[str, ...]
    kind: Kind
    choices: tuple[Any, ...] = ()

    @property
    def label(self) -> str:
        return ".".join(self.path)


def params_of(cfg: SweepConfig) -> list[Param]:
    out = []
    for path, dist in cfg.space.searchable:
        if dist.encoding == "index":
            out.append(Param(path, "categorical", tuple(getattr(dist, "values", ()))))
        else:
            out.append(Param(path, "log" if dist.name in _LOG else "linear"))
    return out


def flat_values(trial: Trial, params: Sequence[Param]) -> dict[str, Any]:
    """label -> value for each parameter the trial has."""
    out: dict[str, Any] = {}
    for p in params:
        node: Any = trial.params
        for part in p.path:
            if not isinstance(node, Mapping) or part not in node:
                break
            node = node[part]
        else:
            out[p.label] = node
    return out


def label_of(value: Any) -> str:
    """How a categorical value is written on an axis or in a table (as in the YAML)."""
    return value if isinstance(value, str) else json.dumps(value)


@dataclass
class Curves:
    """Each trial's (step, value) points of the metric, read incrementally from the sweep's
    metric stream (one XRANGE per call from where the last one stopped)."""

    points: dict[int, list[tuple[int, float]]] = field(default_factory=dict)
    attempts: dict[int, int] = field(default_factory=dict)
    cursor: str = "-"

    def read(self, store: Store, sweep_id: str, chunk: int = 10_000) -> int:
        """Append what arrived since the last read; returns how many points were new."""
        new = 0
        while True:
            entries = store.metrics_after(sweep_id, self.cursor, count=chunk)
            for entry_id, f in entries:
                self.cursor = entry_id
                if not f.get("v"):
                    continue
                number, attempt = int(f["t"]), int(f.get("a", 1))
                if attempt > self.attempts.get(number, 0):  # a new attempt starts its curve anew
                    self.attempts[number] = attempt
                    self.points[number] = []
                elif attempt < self.attempts[number]:
                    continue
                value = float(f["v"])
                if math.isfinite(value):
                    self.points[number].append((int(f.get("s", 0)), value))
                    new += 1
            if len(entries) < chunk:
                return new

    def fill_missing(self, store: Store, sweep_id: str, trials: Sequence[Trial]) -> None:
        """Trials whose stream entries were trimmed away keep their history, by index."""
        lost = [t.number for t in trials if t.history_len and not self.points.get(t.number)]
        for number, values in store.histories(sweep_id, lost).items():
            self.points[number] = list(enumerate(values))


@dataclass
class SweepView:
    sweep: Sweep
    config: SweepConfig
    trials: list[Trial]
    params: list[Param]
    metric: str | None
    goal: str

    @property
    def best(self) -> Trial | None:
        return best_of(self.goal, self.trials)

    def values(self, trial: Trial) -> dict[str, Any]:
        return flat_values(trial, self.params)


def load_view(store: Store, sweep_id: str) -> SweepView:
    sweep = store.sweep(sweep_id)
    cfg = config_of(sweep)
    metric, goal = metric_of(sweep)
    return SweepView(sweep, cfg, store.trials(sweep_id), params_of(cfg), metric, goal)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
