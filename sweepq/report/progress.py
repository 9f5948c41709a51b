"""What `sweepq plan` shows while it plans: one live line on a terminal, or plain progress lines
every few seconds when stderr is a file or a pipe (nohup, CI, `2> plan.log`).

It reads the sweep record the planner already has (per-state counts) and tracks the best trial
itself: one scan of the trials at start, then only the trials that ended since (from the
sweep's event stream) plus the running ones, so its cost does not grow with the sweep.
"""

from __future__ import annotations

import time
from typing import Any, TextIO

from sweepq.model import ENDED_TRIAL_STATES, Sweep, Trial
from sweepq.report.data import best_of, metric_of
from sweepq.report.tables import progress_line
from sweepq.store import Store

__all__ = ["BestTracker", "PlanDisplay"]


class BestTracker:
    """The best trial so far, kept up to date from the event stream."""

    def __init__(self, store: Store, sweep: Sweep) -> None:
        self.store, self.sweep_id = store, sweep.id
        self.metric, self.goal = metric_of(sweep)
        self.cursor = store.last_event_id(sweep.id)
        self.ended_best = best_of(self.goal, store.trials(sweep.id)) if self.metric else None
        self.best = self.ended_best

    def update(self) -> Trial | None:
        if self.metric is None:
            return None
        ended: set[int] = set()
        for entry_id, fields in self.store.events_since(self.sweep_id, self.cursor):
            self.cursor = entry_id
            if fields.get("state") in ENDED_TRIAL_STATES and "trial" in fields:
                ended.add(int(fields["trial"]))
        candidates = [t for t in (self.ended_best,) if t is not None]
        if ended:
            candidates += self.store.trials(self.sweep_id, sorted(ended))
        self.ended_best = best_of(self.goal, candidates)
        running = self.store.trials(self.sweep_id, sorted(self.store.running_numbers(self.sweep_id)))
        self.best = best_of(self.goal, [*candidates, *running])
        return self.best


class PlanDisplay:
    """Progress on stderr: a rich live line on a terminal, else a plain line every `every` s."""

    def __init__(self, store: Store, sweep: Sweep, *, every: float = 5.0, stream: TextIO | None = None) -> None:
        import sys

        from rich.console import Console

        self.stream = stream or sys.stderr
        self.console = Console(file=self.stream)
        self.tty = self.console.is_terminal
        self.every = every if not self.tty else 0.5
        self.best = BestTracker(store, sweep)
        self._last = 0.0
        self._last_text = ""
        self._printed = 0.0
        self._live: Any = None
        if self.tty:
            from rich.live import Live

            self._live = Live(console=self.console, refresh_per_second=2, transient=False)
            self._live.start()

    def update(self, progress: Any) -> None:
        """Called after every planner step; cheap when nothing is due."""
        now = time.monotonic()
        if now - self._last < self.every and not progress.done:
            return
        self._last = now
        sweep: Sweep = progress.sweep
        text = progress_line(sweep, self.best.update())
        if sweep.state != "running" and sweep.state_reason:
            text += f" | {sweep.state_reason}"
        self.show(text)

    def show(self, text: str) -> None:
        if self._live is not None:
            from rich.text import Text

            self._live.update(Text(text))
        elif text != self._last_text or time.monotonic() - self._printed > 60:  # a changed line, or a sign of life
            self._printed = time.monotonic()
            print(f"{time.strftime('%H:%M:%S')} {text}", file=self.stream, flush=True)
        self._last_text = text

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
