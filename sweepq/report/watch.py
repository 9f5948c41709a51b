"""`sweepq status ID --watch`: a live terminal table in the manner of Ray Tune's CLIReporter (a
column per parameter, state, step, last/best metric, worker, runtime), redrawn every few seconds
until the sweep has ended or the person presses Ctrl-C."""

from __future__ import annotations

import time

from rich.console import Console
from rich.live import Live

from sweepq.report.data import load_view
from sweepq.report.tables import watch_table
from sweepq.store import Store

__all__ = ["watch"]

_ENDED = ("finished", "stopped", "cancelled")


def watch(store: Store, sweep_id: str, *, interval: float = 2.0, console: Console | None = None) -> None:
    console = console or Console()
    view = load_view(store, sweep_id)
    with Live(watch_table(view, width=console.width), console=console, auto_refresh=False) as live:
        try:
            while not (view.sweep.state in _ENDED and not view.sweep.active):
                time.sleep(interval)
                view = load_view(store, sweep_id)
                live.update(watch_table(view, width=console.width), refresh=True)
        except KeyboardInterrupt:
            pass
