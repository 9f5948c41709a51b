"""The trial program's line to sweepq: its runner, not Redis.

A subprocess program never gets a Redis credential. Its runner serves a Unix socket in the
attempt's private temporary directory (`SWEEPQ_CHANNEL` names it) and answers a handful of
requests, each fenced to the runner's own trial and attempt: so a program can neither write
into another sweep's trial nor outlive its attempt, and the SDK's import costs nothing but the
standard library (no redis-py, no asyncio) in every trial. In function mode the program runs
inside the runner's process and `DirectLink` calls the store itself.

The protocol: a request is one JSON object per line; a reply is a `marshal`led dict after its
length (4 bytes, big-endian). The program never imports `json` (it pulls in `re`: ~4 ms of every
trial): it writes its few request shapes itself (`to_json`) and reads replies with `marshal`, which
start-up has loaded. `marshal` is only ever read by the program, from its own runner; the runner
reads the program's requests with `json`, never `marshal`, since the program is not trusted.
    {"op": "attach"}                                 -> {"sweep", "trial", "attempt", "params", "metric"}
                                                        (the SDK reads it from `ATTACH_ENV`'s file instead)
    {"op": "log", "step", "row", "value"}            -> {"state", "stop"}
    {"op": "annotate", "fields": {...}}              -> {"ok"}
    {"op": "status"}                                 -> {"stop"}  (true when the attempt must end)
"""

from __future__ import annotations

import _socket
import _thread
import marshal
import os
from abc import ABC, abstractmethod

# What a trial program imports is kept to the bare standard library (no `typing`, `socket`,
# `dataclasses`, `threading`: ~10 ms together, paid by every trial): the server side imports
# the rest when it is built, in the runner.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import selectors
    import threading
    from collections.abc import Mapping
    from typing import Any

    from sweepq.model import Sweep, Trial
    from sweepq.store import Store

__all__ = ["ATTACH_ENV", "ENV", "Attached", "ChannelServer", "DirectLink", "SocketLink", "TrialLink", "link_from_env"]

ENV = "SWEEPQ_CHANNEL"
ATTACH_ENV = "SWEEPQ_ATTACH"  # the attach reply, written by the runner before the program starts
_MAX_LINE = 16 * 1024 * 1024  # one log() row; bigger rows are refused, not buffered forever


class Attached:
    """What the program learns of its trial when it attaches."""

    __slots__ = ("sweep_id", "number", "attempt", "params", "metric", "project", "entity", "marked")

    def __init__(
        self,
        sweep_id: str,
        number: int,
        attempt: int,
        params: dict[str, Any],
        metric: str | None,
        project: str | None = None,
        entity: str | None = None,
        marked: bool = False,
    ) -> None:
        self.sweep_id, self.number, self.attempt, self.params = sweep_id, number, attempt, params
        self.metric, self.project, self.entity = metric, project, entity
        self.marked = marked  # the trial is already marked as reporting through the SDK


class TrialLink(ABC):
    """How the SDK talks to its trial: four requests, all about its own attempt."""

    @abstractmethod
    def attach(self) -> Attached: ...

    @abstractmethod
    def log(self, step: int, row: Mapping[str, Any], value: float | None) -> tuple[str, str]:
        """Append one row; returns (trial state, stop request or ''), as of this row or, for a
        link that does not wait for its rows (`SocketLink`), as of the row before."""

    @abstractmethod
    def annotate(self, **fields: Any) -> bool: ...

    @abstractmethod
    def must_stop(self) -> bool: ...

    def finish(self, summary: str) -> None:
        """The run's last word, its summary (JSON text); nothing waits for the answer."""
        self.annotate(summary=summary)


_in_process: TrialLink | None = None


def set_in_process(link: TrialLink | None) -> None:
    """Function mode: the runner hands the SDK the link of the trial it is running in this very
    process (its own store and records: no new connection, no read of what it already holds)."""
    global _in_process
    _in_process = link


def link_from_env() -> TrialLink | None:
    """The link a trial's environment offers: the runner's own (function mode, set by the runner),
    the runner's socket, or Redis directly (a function run by a runner of another version);
    None outside a sweep."""
    if _in_process is not None:
        return _in_process
    path = os.environ.get(ENV)
    if path:
        return SocketLink(path)
    if os.environ.get("SWEEPQ_REDIS_URL") and os.environ.get("SWEEPQ_SWEEP_ID") and os.environ.get("SWEEPQ_TRIAL"):
        from sweepq.server import connect
        from sweepq.store import Store

        store = Store(connect(os.environ["SWEEPQ_REDIS_URL"], long_running=True))
        return DirectLink(
            store,
            os.environ["SWEEPQ_SWEEP_ID"],
            int(os.environ["SWEEPQ_TRIAL"]),
            int(os.environ.get("SWEEPQ_ATTEMPT", "1")),
        )
    return None


class SocketLink(TrialLink):
    """The program's end: the standard library only.

    A row is sent without waiting for its answer (the runner writes it to Redis while the
    program goes on training, as wandb's own `log` does not wait either): `log` returns the
    answer to the row before, so a stop request reaches the program one `log()` later than if
    it waited (the runner's SIGTERM does not wait for it at all). Every other request waits,
    after the answers still owed. The last word (`finish`) waits for nothing: the runner reads
    what a program sent before it exited."""

    def __init__(self, path: str) -> None:
        self._sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self._sock.connect(path)
        self._lock = _thread.allocate_lock()
        self._buffer = b""
        self._owed: list[str] = []  # ops whose answers are not read yet, oldest first
        self._state = ("running", "")  # the last answer to a row

    def _ask(self, request: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._catch_up(0)
            self._send(request)
            return self._answer()

    def _send(self, request: Mapping[str, Any]) -> None:
        self._sock.sendall(to_json(request).encode("utf-8", "surrogatepass") + b"\n")

    def _catch_up(self, keep: int) -> None:
        """Read the answers owed until at most `keep` are left."""
        while len(self._owed) > keep:
            op = self._owed.pop(0)
            reply = self._answer()
            if op == "log":
                self._state = (str(reply["state"]), str(reply.get("stop") or ""))

    def _answer(self) -> dict[str, Any]:
        head = self._read(4)
        frame = self._read(int.from_bytes(head, "big")) if len(head) == 4 else b""
        if not frame:
            raise ConnectionError("the sweepq runner closed the trial channel")
        reply: dict[str, Any] = marshal.loads(frame)
        if "error" in reply:
            raise ValueError(f"sweepq runner: {reply['error']}")
        return reply

    def _read(self, n: int) -> bytes:
        """Exactly `n` bytes of the reply stream (fewer when the runner closed the socket)."""
        while len(self._buffer) < n:
            chunk = self._sock.recv(65536)
            if not chunk:
                break
            self._buffer += chunk
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def attach(self) -> Attached:
        r = None
        path = os.environ.get(ATTACH_ENV)
        if path:
            try:
                with open(path, "rb") as f:
                    r = marshal.load(f)
            except (OSError, EOFError, ValueError, TypeError):
                r = None
        if not isinstance(r, dict):
            r = self._ask({"op": "attach"})
        return Attached(
            str(r["sweep"]),
            int(r["trial"]),
            int(r["attempt"]),
            dict(r["params"]),
            r.get("metric"),
            r.get("project"),
            r.get("entity"),
            bool(r.get("sdk")),
        )

    def log(self, step: int, row: Mapping[str, Any], value: float | None) -> tuple[str, str]:
        with self._lock:
            self._send({"op": "log", "step": step, "row": row, "value": value})
            self._owed.append("log")
            self._catch_up(1)  # the row before's answer, which came while the program worked
            return self._state

    def annotate(self, **fields: Any) -> bool:
        return bool(self._ask({"op": "annotate", "fields": fields})["ok"])

    def must_stop(self) -> bool:
        return bool(self._ask({"op": "status"})["stop"])

    def finish(self, summary: str) -> None:
        with self._lock:
            self._send({"op": "annotate", "fields": {"summary": summary}})
            self._owed.append("annotate")


class DirectLink(TrialLink):
    """Function mode: the program runs in the runner's process and uses the store."""

    def __init__(
        self,
        store: Store,
        sweep_id: str,
        number: int,
        attempt: int,
        *,
        sweep: Sweep | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        self.store, self.sweep_id, self.number, self.attempt = store, sweep_id, number, attempt
        self._sweep = sweep
        self._params = params  # the claimed attempt's, when the runner has them

    def _get_sweep(self) -> Sweep:
        if self._sweep is None:
            self._sweep = self.store.sweep(self.sweep_id)
        return self._sweep

    def attach(self) -> Attached:
        params = self._params if self._params is not None else self.store.trial(self.sweep_id, self.number).params
        sweep = self._get_sweep()
        raw = sweep.raw_config
        return Attached(
            self.sweep_id,
            self.number,
            self.attempt,
            params,
            sweep.metric.name if sweep.metric else None,
            raw.get("project"),
            raw.get("entity"),
        )

    def log(self, step: int, row: Mapping[str, Any], value: float | None) -> tuple[str, str]:
        from sweepq.store import LogRecord

        state, stop = self.store.log(
            self._get_sweep(), self.number, attempt=self.attempt, records=[LogRecord(step, row, value)]
        )
        return str(state), str(stop or "")

    def annotate(self, **fields: Any) -> bool:
        return self.store.annotate(self.sweep_id, self.number, attempt=self.attempt, **fields)

    def must_stop(self) -> bool:
        t = self.store.trial(self.sweep_id, self.number)
        return bool(t.stop) or t.state != "running" or t.attempt != self.attempt


class ChannelServer:
    """The runner's end: serves the program's requests for one attempt, on a Unix socket in the
    attempt's private directory.

    No thread per connection: the runner's own select loop (`runner._pump`, which also copies
    the program's output) serves it, `fileno()` readable -> `accept()`, a connection readable
    -> `serve(fd)`; a handler thread, the socket's file objects and the hand-offs between the
    two threads cost an SDK trial about 1 ms. `with` serves it from a loop thread of its own
    (for callers without a loop). A connection is the SDK's `init()`, which needs no round trip
    (its trial's facts are in the attach file): the trial is marked as reporting through the
    SDK by its first `log()` (the log script), or on `close` if it connected and never logged;
    its printed metrics stop counting when it connects (`connected`, for the output sink)."""

    def __init__(self, store: Store, sweep: Sweep, trial: Trial, path: str) -> None:
        import socket

        self.path = path
        self.link = DirectLink(store, sweep.id, trial.number, trial.attempt, sweep=sweep, params=trial.params)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        os.chmod(path, 0o600)
        self._listener.listen(16)
        self._listener.setblocking(False)
        self._conns: dict[int, _Conn] = {}
        self._thread: threading.Thread | None = None
        self._wake: tuple[int, int] | None = None
        self._closed = False
        self.connected = False  # the program connected: it reports through the SDK
        self._marked = False  # ... and Redis knows it (the log script marks on the first log)
        self._status: tuple[float, dict[str, Any]] | None = None  # (read at, answer) of the last status

    def write_attach(self, path: str) -> None:
        """What the program's `init()` learns of its trial (`ATTACH_ENV` names the file): the
        attach reply, read without a round trip. "sdk" is true: the trial is marked by the
        program's first log, or when the channel closes (the SDK need not mark it itself)."""
        with open(path, "wb") as f:
            f.write(marshal.dumps(_attach_reply(self.link)))

    def fileno(self) -> int:
        """The listening socket: readable when a program connects (then `accept`)."""
        return int(self._listener.fileno())

    def watch(self, sel: selectors.BaseSelector) -> None:
        """Serve from the caller's select loop: its keys for this server are `owns`'s, and each
        one ready goes to `on_ready`."""
        import selectors

        sel.register(self.fileno(), selectors.EVENT_READ, _LISTENER)

    @staticmethod
    def owns(key: selectors.SelectorKey) -> bool:
        return key.data is _LISTENER or key.data is _CONNECTION

    def on_ready(self, sel: selectors.BaseSelector, key: selectors.SelectorKey) -> None:
        """A program connecting (watched from then on), or a connection's requests to answer."""
        import selectors

        if key.data is _LISTENER:
            fd = self.accept()
            if fd is not None:
                sel.register(fd, selectors.EVENT_READ, _CONNECTION)
        elif not self.serve(int(key.fd)):
            sel.unregister(key.fd)

    def accept(self) -> int | None:
        """Take one waiting connection (None if there is none); returns its descriptor, for the
        caller's select loop (`serve`)."""
        try:
            sock, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return None
        # Replies are small, but a program that never reads them must not hold the runner's
        # loop for ever: a send that cannot proceed for this long drops the connection.
        sock.settimeout(_SEND_TIMEOUT)
        self._conns[sock.fileno()] = _Conn(sock)
        self.connected = True
        return int(sock.fileno())

    def serve(self, fd: int) -> bool:
        """Answer the complete requests waiting on connection `fd`; False once it is closed
        (the caller stops watching it)."""
        conn = self._conns.get(fd)
        if conn is None:
            return False
        try:
            chunk = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError, TimeoutError):
            return True
        except OSError:
            chunk = b""
        if not chunk:
            self._drop(fd)
            return False
        conn.buffer += chunk
        while True:
            end = conn.buffer.find(b"\n")
            if end < 0:
                if len(conn.buffer) <= _MAX_LINE:
                    return True
                # A line longer than any row: refused, and the connection with it.
                self._reply(fd, {"error": f"a request longer than {_MAX_LINE} bytes"})
                self._drop(fd)
                return False
            line, conn.buffer = conn.buffer[:end], conn.buffer[end + 1 :]
            self._reply(fd, self._answer(line, deaf=conn.deaf))

    def _reply(self, fd: int, reply: dict[str, Any]) -> None:
        """Send one reply. A program that went away (it does not wait for every answer) gets no
        more replies, but what it sent before is still served."""
        conn = self._conns[fd]
        if not conn.deaf:
            try:
                conn.sock.sendall(_frame(reply))
            except OSError:
                conn.deaf = True

    def drain(self) -> None:
        """Accept what is still waiting and answer what is already sent (the program has
        exited: a connection it made just before is still marked)."""
        while self.accept() is not None:
            pass
        for fd in list(self._conns):
            self._conns[fd].sock.setblocking(False)
            while fd in self._conns and self._readable(fd) and self.serve(fd):
                pass

    def _answer(self, line: bytes, *, deaf: bool) -> dict[str, Any]:
        """The answer to one request line. A question nobody will read (`deaf`) is not asked of
        Redis, and the stop status is read from Redis at most every `_STATUS_EVERY` seconds: a
        program flooding its channel must not turn into a flood of Redis reads."""
        import json
        import time

        try:
            request = json.loads(line)
            if request.get("op") == "status":
                if deaf:
                    return {}
                now = time.monotonic()
                if self._status is None or now - self._status[0] > _STATUS_EVERY:
                    self._status = (now, _serve(self.link, request))
                return self._status[1]
            answer = _serve(self.link, request)
            self._marked = self._marked or request.get("op") == "log"
            return answer
        except Exception as err:  # noqa: BLE001 - a bad request is answered, never fatal
            return {"error": f"{type(err).__name__}: {err}"}

    def _readable(self, fd: int) -> bool:
        import select

        poll = select.poll()  # not select.select, which refuses descriptors past 1023
        poll.register(fd, select.POLLIN)
        return bool(poll.poll(0))

    def _drop(self, fd: int) -> None:
        conn = self._conns.pop(fd, None)
        if conn is not None:
            conn.sock.close()

    def __enter__(self) -> ChannelServer:
        import threading

        self._wake = os.pipe()
        self._thread = threading.Thread(target=self._loop, name="sweepq-channel", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _loop(self) -> None:
        """`with`: the select loop a caller without one would run."""
        import selectors

        assert self._wake is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self._wake[0], selectors.EVENT_READ, None)
            self.watch(sel)
            while True:
                for key, _ in sel.select():
                    if key.data is None:
                        return
                    self.on_ready(sel, key)

    def close(self) -> None:
        """Answer what is waiting, then close every connection and the socket."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None and self._wake is not None:
            os.write(self._wake[1], b"x")
            self._thread.join(timeout=5.0)
            os.close(self._wake[0])
            os.close(self._wake[1])
        self.drain()
        for fd in list(self._conns):
            self._drop(fd)
        if self.connected and not self._marked:  # init() and no log: still an SDK program
            try:
                self.link.annotate(sdk=1)
            except Exception:  # noqa: BLE001, S110 - best effort, as the mark always was
                pass
        self._listener.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


class _Conn:
    """One program connection: its socket and the bytes of a request not yet complete."""

    __slots__ = ("sock", "buffer", "deaf")

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.buffer = b""
        self.deaf = False  # the program closed its end: answers go nowhere


_SEND_TIMEOUT = 10.0
_STATUS_EVERY = 0.1  # seconds an answer to "status" is reused (the SDK itself asks every 0.2 s)
_LISTENER, _CONNECTION = object(), object()  # what the server's keys in a select loop hold


def _attach_reply(link: DirectLink) -> dict[str, Any]:
    a = link.attach()
    return {
        "sdk": True,
        "sweep": a.sweep_id,
        "trial": a.number,
        "attempt": a.attempt,
        "params": a.params,
        "metric": a.metric,
        "project": a.project,
        "entity": a.entity,
    }


def _serve(link: DirectLink, req: Mapping[str, Any]) -> dict[str, Any]:
    """The reply to one request."""
    from collections.abc import Mapping

    op = req.get("op")
    if op == "attach":  # a program without the attach file asks (`SocketLink.attach`)
        return _attach_reply(link)
    if op == "log":
        value = req.get("value")
        number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        row = req.get("row")
        state, stop = link.log(int(req.get("step", 0)), row if isinstance(row, Mapping) else {}, number)
        return {"state": state, "stop": stop}
    if op == "annotate":
        fields = req.get("fields")
        return {"ok": isinstance(fields, Mapping) and link.annotate(**dict(fields))}
    if op == "status":
        return {"stop": link.must_stop()}
    raise ValueError(f"unknown request {op!r}")


def _frame(reply: Mapping[str, Any]) -> bytes:
    """A reply as the program reads it: its length, then its `marshal` form. What marshal cannot
    hold (it only ever holds JSON values here) goes through JSON first, as text."""
    try:
        data = marshal.dumps(dict(reply))
    except ValueError:
        import json

        data = marshal.dumps(json.loads(json.dumps(reply, default=str)))
    return len(data).to_bytes(4, "big") + data


# JSON string escapes: the quote, the backslash and every control character.
_ESCAPES = {**{c: f"\\u{c:04x}" for c in range(32)}, ord('"'): '\\"', ord("\\"): "\\\\"}


def to_json(value: Any) -> str:
    """`json.dumps(value, default=str)` for what the SDK sends (JSON values, rows of them),
    without importing json. NaN and infinities are written as json.dumps writes them."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"
        return float.__repr__(value)
    if isinstance(value, str):
        return '"' + value.translate(_ESCAPES) + '"'
    if isinstance(value, dict):
        return "{" + ",".join(to_json(str(k)) + ":" + to_json(v) for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    return to_json(str(value))
