"""`sweepq dashboard`: a live view of sweeps on 127.0.0.1, for a person to leave open.

A small stdlib HTTP server: `/sweep/ID/` is the report's page in live mode, which polls
`/sweep/ID/api/state` every 2 s (the same payload the static report embeds, rebuilt from Redis:
curves read incrementally, the importance model refitted only when a trial ended) and serves
plotly.js from plotly's package, so it works with no network. Read-only: nothing here writes to
Redis.

Why not optuna-dashboard over a mirror of the sweep: it needs an Optuna storage, so every poll
would copy the sweep into one; it knows Optuna's states only (no pruning reason, worker, attempt,
killed/crashed), and its write actions (notes, deleting studies) would act on a throw-away copy.
"""

from __future__ import annotations

import html
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from sweepq.errors import NotFound
from sweepq.store import Store

__all__ = ["make_server", "serve"]


class _State:
    def __init__(self, store: Store, sweep_id: str | None) -> None:
        from sweepq.report.payload import PayloadBuilder

        self.store, self.sweep_id = store, sweep_id
        self.lock = threading.Lock()
        self.builders: dict[str, PayloadBuilder] = {}

    def payload(self, sweep_id: str) -> dict[str, Any]:
        from sweepq.report.page import _finite
        from sweepq.report.payload import PayloadBuilder

        with self.lock:  # one builder per sweep; redis clients are thread-safe, builders are not
            builder = self.builders.get(sweep_id)
            if builder is None:
                self.store.sweep(sweep_id)  # NotFound for an unknown id
                builder = self.builders[sweep_id] = PayloadBuilder(self.store, sweep_id)
            result: dict[str, Any] = _finite(builder.build())
            return result


class _Handler(BaseHTTPRequestHandler):
    state: _State  # set on the subclass that make_server builds

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass  # a page polling every 2 s would flood the terminal

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        path = unquote(urlsplit(self.path).path)
        try:
            self._route(path, [p for p in path.split("/") if p])
        except NotFound as err:
            self._send(404, "text/plain", str(err).encode())

    def _route(self, path: str, parts: list[str]) -> None:
        from sweepq.report.page import page, plotly_js

        if path.endswith("/plotly.min.js"):
            self._send(200, "application/javascript", plotly_js().encode(), cache=True)
        elif not parts and self.state.sweep_id is not None:
            self._redirect(f"/sweep/{self.state.sweep_id}/")
        elif not parts:
            self._send(200, "text/html", _index(self.state.store).encode())
        elif parts[0] == "sweep" and len(parts) == 2 and not path.endswith("/"):
            self._redirect(path + "/")
        elif parts[0] == "sweep" and len(parts) == 2:
            self.state.store.sweep(parts[1])
            self._send(200, "text/html", page(f"sweep {parts[1]} (live)", poll="api/state").encode())
        elif parts[0] == "sweep" and parts[2:] == ["api", "state"]:
            body = json.dumps(self.state.payload(parts[1]), allow_nan=False, default=str).encode()
            self._send(200, "application/json", body)
        elif path == "/favicon.ico":
            self._send(204, "image/x-icon", b"")
        else:
            self._send(404, "text/plain", b"not found")

    def _redirect(self, where: str) -> None:
        self.send_response(302)
        self.send_header("Location", where)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, code: int, kind: str, body: bytes, *, cache: bool = False) -> None:
        self.send_response(code)
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=86400" if cache else "no-store")
        self.end_headers()
        self.wfile.write(body)


def _index(store: Store) -> str:
    rows = []
    for sid in store.sweep_ids():
        s = store.sweep(sid)
        name, method = str(s.raw_config.get("name") or ""), str(s.raw_config.get("method"))
        counts = ", ".join(f"{n} {k}" for k, n in s.counts.items() if n)
        rows.append(
            f"<tr><td><a href='/sweep/{html.escape(sid)}/'>{html.escape(sid)}</a></td><td>{html.escape(name)}"
            f"</td><td>{html.escape(method)}</td><td>{s.state}</td><td>{html.escape(counts)}</td></tr>"
        )
    body = "".join(rows) or "<tr><td colspan=5>no sweeps yet</td></tr>"
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>sweepq sweeps</title></head>"
        "<body style='font-family:system-ui,sans-serif'><h1>sweeps</h1><table cellpadding=4>"
        f"<tr><th>id</th><th>name</th><th>method</th><th>state</th><th>trials</th></tr>{body}</table></body></html>"
    )


def make_server(store: Store, sweep_id: str | None, *, port: int = 8765) -> ThreadingHTTPServer:
    """The server, bound to 127.0.0.1 only (the page has no authentication)."""
    handler = type("Handler", (_Handler,), {"state": _State(store, sweep_id)})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    return server


def serve(store: Store, sweep_id: str | None, *, port: int = 8765) -> None:
    """Serve until Ctrl-C; the first line of stdout is the URL."""
    import sys

    try:
        server = make_server(store, sweep_id, port=port)
    except OSError as err:
        from sweepq.errors import SweepqError

        raise SweepqError(f"--port {port}: cannot listen on 127.0.0.1 ({err.strerror}); try --port 0") from None
    bound = int(server.server_address[1])
    path = f"/sweep/{sweep_id}/" if sweep_id else "/"
    print(f"http://127.0.0.1:{bound}{path}", flush=True)
    print("serving a live view (read-only); Ctrl-C stops it", file=sys.stderr, flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
