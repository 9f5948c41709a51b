"""The report page: one HTML document and one renderer for the static report (payload embedded,
plotly.js inlined: it opens offline, from a file) and the live dashboard (payload polled)."""

from __future__ import annotations

import html
import json
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["page", "plotly_js"]


@cache
def _asset(name: str) -> str:
    return (resources.files("sweepq") / "report" / name).read_text(encoding="utf-8")


@cache
def plotly_js() -> str:
    """plotly.js as shipped inside plotly's Python package: no CDN, no network at view time."""
    return (resources.files("plotly") / "package_data" / "plotly.min.js").read_text(encoding="utf-8")


def _script_json(data: Any) -> str:
    """JSON safe inside a <script> element."""
    return json.dumps(data, allow_nan=False, default=str).replace("</", "<\\/")


def page(title: str, *, payload: dict[str, Any] | None = None, poll: str | None = None) -> str:
    """A static page (`payload` embedded, plotly.js inline) or a live one (`poll` is the JSON URL
    the page fetches every 2 s; plotly.js comes from the same server)."""
    if payload is not None:
        plotly = f"<script>{plotly_js()}</script>"
        boot = f"render({_script_json(_finite(payload))});"
    else:
        plotly = '<script src="plotly.min.js"></script>'
        boot = f"live({json.dumps(poll)});"
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_asset('page.css')}</style>{plotly}</head><body>"
        f"{_BODY}<script>{_asset('page.js')}\n{boot}</script></body></html>"
    )


def _finite(value: Any) -> Any:
    """NaN and inf become null: JSON has neither."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


_BODY = """
<h1 id="title">sweep</h1><div id="live"></div><div id="status"></div>
<div class="row"><div><h2>best configuration</h2><div id="best"></div></div>
<div><h2>recent pruning and failures</h2><div id="decisions"></div></div></div>
<div id="fig-parcoords"></div><div id="fig-importance"></div><div id="fig-curves"></div>
<h2>trials</h2><div id="trials"></div>
<h2>sweep config</h2><pre id="config"></pre>
"""
