"""Everything the report page shows, as one JSON-able dict: the static report embeds it, the live
dashboard serves it at /api/state and the page's one renderer draws either."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sweepq.report.data import Curves, SweepView, label_of, load_view
from sweepq.report.figures import curves_figure, importance_figure, parcoords_figure, trial_colour
from sweepq.report.importance import Importance, compute
from sweepq.report.tables import progress_line
from sweepq.store import Store

__all__ = ["PayloadBuilder", "build_payload"]


@dataclass
class PayloadBuilder:
    """Builds the payload again and again for one sweep, cheaply: curves are read incrementally
    and the importance model is refitted only when the set of scored trials changed."""

    store: Store
    sweep_id: str
    curves: Curves = field(default_factory=Curves)
    _importance_key: tuple[int, ...] = ()
    _importance: list[Importance] = field(default_factory=list)

    def build(self) -> dict[str, Any]:
        view = load_view(self.store, self.sweep_id)
        self.curves.read(self.store, self.sweep_id)
        self.curves.fill_missing(self.store, self.sweep_id, view.trials)
        key = tuple(t.number for t in view.trials if t.best is not None and t.state not in ("running", "queued"))
        if key != self._importance_key:
            self._importance_key, self._importance = key, compute(view)
        return _payload(view, self.curves, self._importance)


def build_payload(store: Store, sweep_id: str) -> dict[str, Any]:
    return PayloadBuilder(store, sweep_id).build()


def _payload(view: SweepView, curves: Curves, importance: list[Importance]) -> dict[str, Any]:
    from sweepq import config as cfgmod

    best = view.best
    now = time.time()
    sweep = view.sweep
    figures = {
        "parcoords": parcoords_figure(view),
        "importance": importance_figure(view, importance),
        "curves": curves_figure(view, curves),
    }
    ended = [t for t in view.trials if t.state in ("pruned", "killed", "failed", "crashed") and t.ended_at]
    decisions = [
        {"trial": t.number, "state": t.state, "at": t.ended_at, "reason": t.as_dict()["reason"] or ""}
        for t in sorted(ended, key=lambda t: -(t.ended_at or 0))[:15]
    ]
    return {
        "sweep": {
            "id": sweep.id,
            "name": view.config.name or "",
            "method": view.config.method,
            "state": sweep.state,
            "reason": sweep.state_reason or "",
            "progress": progress_line(sweep, best),
            "counts": sweep.counts,
            "metric": view.metric or "",
            "goal": view.goal,
            "generated_at": now,
        },
        "best": None
        if best is None
        else {"trial": best.number, "value": best.best, "state": best.state, "params": best.params},
        "figures": {k: v for k, v in figures.items() if v is not None},
        "columns": [p.label for p in view.params],
        "trials": [
            {
                "number": t.number,
                "colour": trial_colour(t.number),
                "state": t.state,
                "params": {k: label_of(v) if not isinstance(v, (int, float)) else v for k, v in view.values(t).items()},
                "best": t.best,
                "last": t.last,
                "steps": t.history_len,
                "duration": None if t.started_at is None else (t.ended_at or now) - t.started_at,
                "worker": t.worker or "",
                "reason": t.as_dict()["reason"] or "",
            }
            for t in view.trials
        ],
        "decisions": decisions,
        "config": cfgmod.to_yaml(view.config),
    }
