"""What people read: status tables (rich) and the HTML report (plotly, imported lazily)."""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Sequence
from typing import Any

from rich.table import Table

from sweepq.model import Sweep, Trial, TrialState
from sweepq.store import Store

__all__ = ["best_trial", "html_report", "progress_line", "sweep_table", "sweeps_table", "trials_table"]


def best_trial(sweep: Sweep, trials: Sequence[Trial]) -> Trial | None:
    """The trial with the best logged value of the metric, by the sweep's goal."""
    metric = sweep.metric
    if metric is None:
        return None
    sign = -1.0 if metric.maximize else 1.0
    scored = [t for t in trials if t.best is not None]
    return min(scored, key=lambda t: sign * (t.best or 0.0)) if scored else None


def progress_line(sweep: Sweep, best: Trial | None) -> str:
    c = sweep.counts
    done = sum(c[s] for s in TrialState if s.ended)
    total = f"/{sweep.cap}" if sweep.cap else ""
    line = (
        f"[{sweep.state}] done {done}{total} (finished {c['finished']}, pruned "
        f"{c['pruned']}, failed {c['failed'] + c['crashed']}) running {c['running']} "
        f"queued {c['queued']}"
    )
    metric = sweep.metric
    if metric is not None and best is not None and best.best is not None:
        line += f" | best {metric.name}={best.best:.6g} (trial {best.number})"
    return line


def sweeps_table(store: Store) -> Table:
    table = Table(title="sweeps")
    for col in ("id", "name", "method", "state", "finished", "running", "queued", "failed", "pruned", "created"):
        table.add_column(col)
    for sid in store.sweep_ids():
        s = store.sweep(sid)
        c = s.counts
        table.add_row(
            sid,
            str(s.raw_config.get("name") or ""),
            str(s.raw_config.get("method")),
            s.state,
            str(c["finished"]),
            str(c["running"]),
            str(c["queued"]),
            str(c["failed"] + c["crashed"]),
            str(c["pruned"]),
            _time(s.created_at),
        )
    return table


def sweep_table(sweep: Sweep, trials: Sequence[Trial]) -> Table:
    """One sweep: counts, best trial and the running trials."""
    best = best_trial(sweep, trials)
    from rich.markup import escape

    table = Table(
        title=f"sweep {sweep.id} ({sweep.config.method}, {sweep.state})",
        caption=escape(progress_line(sweep, best) + (f"\n{sweep.state_reason}" if sweep.state_reason else "")),
    )
    for col in ("trial", "state", "attempt", "worker", "last", "best", "logged", "params"):
        table.add_column(col)
    shown = [t for t in trials if t.state == "running"]
    if best is not None and best not in shown:
        shown.insert(0, best)
    for t in shown:
        table.add_row(
            str(t.number) + (" *" if t is best else ""),
            t.state,
            str(t.attempt),
            t.worker or "",
            _num(t.last),
            _num(t.best),
            str(t.history_len),
            json.dumps(t.params)[:80],
        )
    return table


def trials_table(trials: Sequence[Trial]) -> Table:
    table = Table()
    for col in ("trial", "state", "attempt", "best", "last", "exit", "reason", "params"):
        table.add_column(col)
    for t in trials:
        reason = t.as_dict()["reason"] or ""
        table.add_row(
            str(t.number),
            t.state,
            str(t.attempt),
            _num(t.best),
            _num(t.last),
            "" if t.exit_code is None else str(t.exit_code),
            reason[:60],
            json.dumps(t.params)[:60],
        )
    return table


def html_report(store: Store, sweep_id: str) -> str:
    """A self-contained page: parallel coordinates, parameter importance, history."""
    import plotly.graph_objects as go

    sweep = store.sweep(sweep_id)
    trials = store.trials(sweep_id)
    metric = sweep.metric.name if sweep.metric else "value"
    scored = [t for t in trials if t.best is not None]
    figs: list[str] = []
    flat = [_flatten(t.params) for t in scored]
    names = sorted({k for f in flat for k in f})
    if scored and names:
        dims = []
        for name in names:
            vals = [f.get(name) for f in flat]
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
                dims.append({"label": name, "values": vals})
            else:
                labels = sorted({json.dumps(v) for v in vals})
                dims.append(
                    {
                        "label": name,
                        "values": [labels.index(json.dumps(v)) for v in vals],
                        "tickvals": list(range(len(labels))),
                        "ticktext": labels,
                    }
                )
        dims.append({"label": metric, "values": [t.best for t in scored]})
        fig = go.Figure(
            go.Parcoords(
                line={"color": [t.best for t in scored], "colorscale": "Viridis", "showscale": True}, dimensions=dims
            )
        )
        fig.update_layout(title="parallel coordinates")
        figs.append(fig.to_html(full_html=False, include_plotlyjs="cdn"))
        importance = _importance(flat, [t.best or 0.0 for t in scored], names)
        if importance:
            fig = go.Figure(go.Bar(x=list(importance.values()), y=list(importance.keys()), orientation="h"))
            fig.update_layout(title="parameter importance (|Spearman correlation| with metric)")
            figs.append(fig.to_html(full_html=False, include_plotlyjs=False))
    histories = store.histories(sweep_id, [t.number for t in trials])
    fig = go.Figure()
    for t in trials:
        h = histories.get(t.number) or []
        if h:
            fig.add_trace(go.Scatter(y=h, mode="lines", name=f"{t.number} ({t.state})"))
    fig.update_layout(title=f"{metric} per iteration", xaxis_title="iteration")
    figs.append(fig.to_html(full_html=False, include_plotlyjs=False if figs else "cdn"))
    body = "\n".join(figs)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>sweep {sweep_id}</title>"
        f"</head><body><h1>sweep {html.escape(sweep_id)}</h1><pre>"
        f"{html.escape(progress_line(sweep, best_trial(sweep, trials)))}</pre>{body}"
        f"</body></html>"
    )


def _importance(flat: list[dict[str, Any]], values: list[float], names: list[str]) -> dict[str, float]:
    from scipy.stats import spearmanr

    out = {}
    for name in names:
        col = [f.get(name) for f in flat]
        if len({json.dumps(v) for v in col}) < 2:
            continue
        codes = (
            col
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in col)
            else [sorted({json.dumps(v) for v in col}).index(json.dumps(v)) for v in col]
        )
        rho = spearmanr(codes, values).statistic
        out[name] = abs(float(rho)) if rho == rho else 0.0
    return dict(sorted(out.items(), key=lambda kv: kv[1]))


def _flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in params.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.6g}"


def _time(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else ""
