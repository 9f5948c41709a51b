"""What people read: terminal tables (rich), and the report page (plotly) that `sweepq report`
writes as one self-contained file and `sweepq dashboard` serves live."""

from __future__ import annotations

from sweepq.report.tables import best_trial, progress_line, sweep_table, sweeps_table, trials_table, watch_table
from sweepq.store import Store

__all__ = ["best_trial", "html_report", "progress_line", "sweep_table", "sweeps_table", "trials_table", "watch_table"]


def html_report(store: Store, sweep_id: str) -> str:
    """A self-contained page (plotly.js inlined: it opens offline): parallel coordinates,
    importance beside correlation, curves by step, the trials, the best configuration, the config."""
    from sweepq.report.page import page
    from sweepq.report.payload import build_payload

    return page(f"sweep {sweep_id}", payload=build_payload(store, sweep_id))
