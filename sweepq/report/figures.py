"""The report's plotly figures, as JSON-able dicts: the static report embeds them and the live
dashboard sends them to the page, so both show the same charts.

- parallel coordinates: a log axis (log10 values, real-valued ticks) for log distributions, a
  categorical axis for `values`, constants left out, the colour range clipped to the 5-95%
  quantiles so one outlier does not flatten it;
- importance (model) beside a signed correlation;
- the metric by step, one colour per trial, pruned trials dashed and ended with an x.
"""

from __future__ import annotations

import json
import math
from typing import Any

from sweepq.report.data import Curves, Param, SweepView, label_of
from sweepq.report.importance import Importance, evaluator_name

__all__ = ["curves_figure", "importance_figure", "parcoords_figure", "trial_colour"]

# plotly's qualitative "Plotly" + "D3" palettes: a trial keeps its colour as the page updates.
_PALETTE = (
    "#636EFA #EF553B #00CC96 #AB63FA #FFA15A #19D3F3 #FF6692 #B6E880 #FF97FF #FECB52 "
    "#1F77B4 #FF7F0E #2CA02C #D62728 #9467BD #8C564B #E377C2 #7F7F7F #BCBD22 #17BECF"
).split()


def trial_colour(number: int) -> str:
    return _PALETTE[number % len(_PALETTE)]


def _as_dict(fig: Any) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(fig.to_json())
    return out


def parcoords_figure(view: SweepView) -> dict[str, Any] | None:
    import plotly.graph_objects as go

    rows = [(view.values(t), t.best) for t in view.trials if t.best is not None and math.isfinite(t.best)]
    rows = [(v, b) for v, b in rows if all(p.label in v for p in view.params)]
    if not rows or not view.params:
        return None
    dims = [_dimension(p, [v[p.label] for v, _ in rows]) for p in view.params]
    values = [float(b) for _, b in rows if b is not None]
    dims.append({"label": view.metric or "metric", "values": values})
    lo, hi = _quantile(values, 0.05), _quantile(values, 0.95)
    if lo == hi:
        lo, hi = min(values), max(values) + (1e-12 if min(values) == max(values) else 0)
    line = {
        "color": values,
        "colorscale": "Viridis",
        "reversescale": view.goal != "maximize",  # the best trials are always the bright ones
        "cmin": lo,
        "cmax": hi,
        "showscale": True,
        "colorbar": {"title": {"text": view.metric or ""}},
    }
    fig = go.Figure(go.Parcoords(line=line, dimensions=dims))
    fig.update_layout(
        title=f"parallel coordinates ({len(rows)} trials with a {view.metric}; colour clipped to its 5-95% range)",
        margin={"l": 60, "r": 60, "t": 80, "b": 30},
        height=420,
    )
    return _as_dict(fig)


def _dimension(p: Param, raw: list[Any]) -> dict[str, Any]:
    if p.kind == "categorical" or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw):
        labels = list(dict.fromkeys([label_of(c) for c in p.choices] + [label_of(v) for v in raw]))
        return {
            "label": p.label,
            "values": [labels.index(label_of(v)) for v in raw],
            "tickvals": list(range(len(labels))),
            "ticktext": labels,
            "range": [-0.25, len(labels) - 0.75] if len(labels) > 1 else [-1, 1],
        }
    if p.kind == "log" and min(raw) > 0:
        logs = [math.log10(float(v)) for v in raw]
        lo, hi = min(logs), max(logs)
        ticks = _log_ticks(lo, hi)
        return {
            "label": f"{p.label} (log)",
            "values": logs,
            "tickvals": ticks,
            "ticktext": [f"{10**t:.3g}" for t in ticks],
            "range": [lo, hi] if hi > lo else [lo - 0.5, hi + 0.5],
        }
    return {"label": p.label, "values": [float(v) for v in raw]}


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Whole decades inside the range, or five evenly spaced log points when fewer than two."""
    decades = [float(d) for d in range(math.ceil(lo), math.floor(hi) + 1)]
    if len(decades) >= 2:
        return decades
    return [lo + (hi - lo) * i / 4 for i in range(5)] if hi > lo else [lo]


def _quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    pos = (len(s) - 1) * q
    i = int(pos)
    return s[i] if i + 1 >= len(s) else s[i] + (s[i + 1] - s[i]) * (pos - i)


def importance_figure(view: SweepView, rows: list[Importance]) -> dict[str, Any] | None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not rows:
        return None
    rows = rows[::-1]  # plotly draws the first bar at the bottom
    labels = [r.label for r in rows]
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        horizontal_spacing=0.04,
        subplot_titles=(f"importance ({evaluator_name()})", f"correlation with {view.metric} (Spearman)"),
    )
    fig.add_trace(
        go.Bar(
            x=[r.importance for r in rows],
            y=labels,
            orientation="h",
            marker_color="#636EFA",
            text=[f"{r.importance:.2f}" for r in rows],
            name="importance",
        ),
        row=1,
        col=1,
    )
    corr = [r.correlation for r in rows]
    fig.add_trace(
        go.Bar(
            x=[c or 0.0 for c in corr],
            y=labels,
            orientation="h",
            marker_color=["#2CA02C" if (c or 0) >= 0 else "#D62728" for c in corr],
            text=["n/a (categorical)" if c is None else f"{c:+.2f}" for c in corr],
            name="correlation",
        ),
        row=1,
        col=2,
    )
    fig.update_xaxes(range=[0, 1], row=1, col=1)
    fig.update_xaxes(range=[-1, 1], row=1, col=2)
    fig.update_layout(
        title="parameter importance",
        showlegend=False,
        height=max(240, 60 + 40 * len(rows)),
        margin={"l": 120, "r": 30, "t": 80, "b": 30},
    )
    return _as_dict(fig)


def curves_figure(view: SweepView, curves: Curves) -> dict[str, Any]:
    """The metric by step, a colour per trial; pruned trials dashed with an x at the step where
    they were stopped (the hover says why)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for t in view.trials:
        points = curves.points.get(t.number) or []
        if not points:
            continue
        colour = trial_colour(t.number)
        pruned = t.state == "pruned"
        reason = t.as_dict()["reason"] or ""
        fig.add_trace(
            go.Scatter(
                x=[s for s, _ in points],
                y=[v for _, v in points],
                mode="lines",
                name=f"{t.number} ({t.state})",
                legendgroup=str(t.number),
                line={"color": colour, "dash": "dot" if pruned else "solid", "width": 1.5 if pruned else 2.5},
                opacity=0.6 if pruned else 1.0,
                hovertemplate=f"trial {t.number} ({t.state})<br>step %{{x}}<br>{view.metric} %{{y:.4g}}<extra></extra>",
            )
        )
        if t.state in ("pruned", "running", "failed", "killed", "crashed"):
            symbol = {"pruned": "x", "running": "circle-open"}.get(t.state, "square")
            s, v = points[-1]
            fig.add_trace(
                go.Scatter(
                    x=[s],
                    y=[v],
                    mode="markers",
                    showlegend=False,
                    legendgroup=str(t.number),
                    marker={"symbol": symbol, "size": 10, "color": colour, "line": {"width": 2, "color": colour}},
                    hovertext=[f"trial {t.number} {t.state} at step {s}: {reason}"],
                    hoverinfo="text",
                )
            )
    fig.update_layout(
        title=f"{view.metric or 'metric'} by step (dotted, x: pruned; o: running)",
        xaxis_title="step",
        yaxis_title=view.metric or "",
        height=460,
        margin={"l": 60, "r": 30, "t": 80, "b": 50},
    )
    return _as_dict(fig)
