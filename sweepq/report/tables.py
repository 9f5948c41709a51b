"""Terminal tables (rich): every parameter shown, never cut, the metric named in the headers.

A parameter gets a column of its own while the table fits the terminal; when it would not, the
parameters share one column, one `name=value` per line, so nothing is ever ellipsized.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.markup import escape
from rich.table import Table

from sweepq.model import Sweep, Trial, TrialState
from sweepq.report.data import SweepView, best_of, label_of, metric_of
from sweepq.store import Store

__all__ = ["progress_line", "sweep_table", "sweeps_table", "trials_table", "watch_table"]


def progress_line(sweep: Sweep, best: Trial | None) -> str:
    """One line: state, done/cap, counts by state, best so far."""
    c = sweep.counts
    done = sum(c[s] for s in TrialState if s.ended)
    total = f"/{sweep.cap}" if sweep.cap else ""
    line = (
        f"[{sweep.state}] done {done}{total} (finished {c['finished']}, pruned "
        f"{c['pruned']}, failed {c['failed'] + c['crashed']}) running {c['running']} "
        f"queued {c['queued']}"
    )
    metric, _ = metric_of(sweep)
    if best is not None and best.best is not None:
        line += f" | best {metric}={best.best:.6g} (trial {best.number})"
    return line


def sweeps_table(store: Store) -> Table:
    """All sweeps, newest first: fits 80 columns (the counts wrap in their own column)."""
    table = Table(title="sweeps", box=box.SIMPLE_HEAD)
    for col in ("id", "name", "method", "state", "trials", "counts", "created"):
        table.add_column(col, overflow="fold")
    for sid in store.sweep_ids():
        s = store.sweep(sid)
        counts = "\n".join(f"{n} {state}" for state, n in s.counts.items() if n)
        table.add_row(
            sid,
            escape(str(s.raw_config.get("name") or "")),
            str(s.raw_config.get("method")),
            s.state,
            f"{s.created}/{s.cap}" if s.cap else str(s.created),
            counts,
            _time(s.created_at),
        )
    return table


def sweep_table(view: SweepView, *, width: int = 80) -> Table:
    """One sweep: the best trial and the running ones; counts and the state's reason below."""
    best = view.best
    shown = [t for t in view.trials if t.state == "running"]
    if best is not None and best not in shown:
        shown.insert(0, best)
    caption = progress_line(view.sweep, best) + (f"\n{view.sweep.state_reason}" if view.sweep.state_reason else "")
    title = f"sweep {view.sweep.id} ({view.config.method}, {view.sweep.state})"
    return _trial_table(view, shown, title=title, caption=caption, width=width, mark=best)


def trials_table(view: SweepView, *, width: int = 80) -> Table:
    """Every trial: parameters, state, best/last metric, steps, duration, worker, reason."""
    return _trial_table(view, view.trials, title=None, caption=None, width=width, mark=view.best, reason=True)


def watch_table(view: SweepView, *, width: int = 80) -> Table:
    """`status --watch` (after Ray Tune's CLIReporter): running trials first, then the latest
    ended ones, as many as a screen holds."""
    running = [t for t in view.trials if t.state in ("running", "queued")]
    ended = [t for t in reversed(view.trials) if t.state not in ("running", "queued")][: max(0, 20 - len(running))]
    caption = progress_line(view.sweep, view.best)
    if view.sweep.state_reason:
        caption += f"\n{view.sweep.state_reason}"
    return _trial_table(
        view,
        running + ended,
        title=f"sweep {view.sweep.id} ({view.config.method}, {view.sweep.state})",
        caption=caption,
        width=width,
        mark=view.best,
        reason=True,
    )


def _trial_table(
    view: SweepView,
    trials: Sequence[Trial],
    *,
    title: str | None,
    caption: str | None,
    width: int,
    mark: Trial | None,
    reason: bool = False,
) -> Table:
    metric = view.metric or "metric"
    now = time.time()
    fixed_head = ["trial", "state"]
    tail_head = [f"best {metric}", f"last {metric}", "steps", "time", "worker"] + (["reason"] if reason else [])
    rows: list[tuple[list[str], list[str], list[str]]] = []
    for t in trials:
        values = view.values(t)
        rows.append(
            (
                [f"{t.number}{' *' if mark is not None and t.number == mark.number else ''}", t.state],
                [_val(values.get(p.label)) for p in view.params],
                [
                    _num(t.best),
                    _num(t.last),
                    str(t.history_len),
                    _duration(t, now),
                    t.worker or "",
                    *([t.as_dict()["reason"] or ""] if reason else []),
                ],
            )
        )
    labels = [p.label for p in view.params]
    wide = _width(fixed_head + labels + tail_head, [a + b + c for a, b, c in rows])
    table = Table(title=title, caption=escape(caption) if caption else None, box=box.SIMPLE_HEAD)
    for head in fixed_head:
        table.add_column(head, no_wrap=True)
    if wide <= width or not labels:  # a column per parameter
        for head in labels:
            table.add_column(escape(head), overflow="fold")
        for head in tail_head:
            table.add_column(escape(head), overflow="fold", no_wrap=head not in ("worker", "reason"))
        for fixed, params, tail in rows:
            table.add_row(*(escape(c) for c in fixed + params + tail))
        return table
    # Narrow: one `name=value` line per parameter, and the worker and reason share the last column.
    longest = max(len(f"{k}={v}") for row in rows for k, v in zip(labels, row[1], strict=True))
    table.add_column("params", overflow="fold", min_width=min(longest, 32))
    for head in tail_head[:1] + tail_head[2:4]:
        table.add_column(escape(head), no_wrap=True)
    table.add_column("worker / reason" if reason else "worker", overflow="fold")
    for fixed, params, tail in rows:
        lines = "\n".join(f"{k}={v}" for k, v in zip(labels, params, strict=True))
        notes = "\n".join(x for x in tail[4:] if x)
        table.add_row(*(escape(c) for c in [*fixed, lines, tail[0], tail[2], tail[3], notes]))
    return table


def _width(heads: list[str], rows: list[list[str]]) -> int:
    """The table's natural width with SIMPLE_HEAD: each column its widest cell plus padding."""
    total = 0
    for i, head in enumerate(heads):
        total += max([len(head), *(max(map(len, r[i].split("\n"))) for r in rows)]) + 2
    return total


def best_trial(sweep: Sweep, trials: Sequence[Trial]) -> Trial | None:
    """The trial with the best logged value of the metric, by the sweep's goal."""
    metric, goal = metric_of(sweep)
    return None if metric is None else best_of(goal, trials)


def _val(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return label_of(value)


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.6g}"


def _duration(t: Trial, now: float) -> str:
    if t.started_at is None:
        return ""
    seconds = (t.ended_at or now) - t.started_at
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    return f"{minutes}m{sec:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def _time(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%m-%d %H:%M") if ts else ""
