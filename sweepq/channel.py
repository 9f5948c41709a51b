"""The runner's end of a trial program's line to sweepq (the program's end: `sweepq.link`).

A subprocess program never gets a Redis credential. Its runner hands it one end of a connected
socket (`link.FD_ENV`) and serves a Unix socket in the attempt's private temporary directory
(`link.ENV`, for the processes the program starts), and answers a handful of requests, each
fenced to the runner's own trial and attempt: so a program can neither write into another
sweep's trial nor outlive its attempt. In function mode the program runs inside the runner's
process and `DirectLink` calls the store itself. The runner reads the program's requests with
`json`, never `marshal`, since the program is not trusted; its replies are `marshal`led (see
`sweepq.link` for the protocol).
"""

from __future__ import annotations

import marshal
import os
from typing import TYPE_CHECKING, Any

from sweepq.link import ATTACH_ENV, ENV, FD_ENV, Attached, SocketLink, TrialLink, link_from_env, set_in_process, to_json
from sweepq.store import LogRecord  # the runner's end: the store is loaded wherever this is

if TYPE_CHECKING:
    import selectors
    import socket
    import threading
    from collections.abc import Mapping, Sequence

    from sweepq.model import Sweep, Trial
    from sweepq.store import Store

__all__ = [
    "ATTACH_ENV",
    "ENV",
    "FD_ENV",
    "Attached",
    "ChannelServer",
    "DirectLink",
    "SocketLink",
    "TrialLink",
    "link_from_env",
    "set_in_process",
    "to_json",
]


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

        return self.log_records([LogRecord(step, row, value)])

    def log_records(self, records: Sequence[LogRecord]) -> tuple[str, str]:
        """Append rows in one round trip; (trial state, stop request or '') after the last."""
        state, stop = self.store.log(self._get_sweep(), self.number, attempt=self.attempt, records=records)
        return str(state), str(stop or "")

    def latest(self) -> tuple[str, str]:
        t = self.store.trial(self.sweep_id, self.number)
        return (str(t.state) if t.attempt == self.attempt else "stale"), str(t.stop or "")

    def annotate(self, **fields: Any) -> bool:
        return self.store.annotate(self.sweep_id, self.number, attempt=self.attempt, **fields)

    def must_stop(self) -> bool:
        t = self.store.trial(self.sweep_id, self.number)
        return bool(t.stop) or t.state != "running" or t.attempt != self.attempt


class ChannelServer:
    """The runner's end: serves the program's requests for one attempt, on the connected socket
    the program inherits (`offer`) and on a Unix socket in the attempt's private directory.

    No thread per connection: the runner's own select loop (`runner._pump`, which also copies
    the program's output) serves it, `fileno()` readable -> `accept()`, a connection readable
    -> `serve(fd)`; a handler thread, the socket's file objects and the hand-offs between the
    two threads cost an SDK trial about 1 ms. `with` serves it from a loop thread of its own
    (for callers without a loop). The SDK's `init()` says "hello" and waits for nothing (its
    trial's facts are in the attach file): the trial is marked as reporting through the SDK by
    its first `log()` (the log script), or on `close` if it said hello and never logged; its
    printed metrics stop counting from then on (`connected`, for the output sink). The run's
    summary, its last word, is kept for the finish script (`summary`): one round trip fewer."""

    def __init__(self, store: Store, sweep: Sweep, trial: Trial, path: str) -> None:
        import socket

        self.path = path
        self.link = DirectLink(store, sweep.id, trial.number, trial.attempt, sweep=sweep, params=trial.params)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        os.chmod(path, 0o600)
        self._listener.listen(16)
        self._listener.setblocking(False)
        self._listening = True  # False once accept ran out of descriptors (`_stop_listening`)
        self._conns: dict[int, _Conn] = {}
        self._thread: threading.Thread | None = None
        self._wake: tuple[int, int] | None = None
        self._closed = False
        self.connected = False  # the program connected: it reports through the SDK
        self._marked = False  # ... and Redis knows it (the log script marks on the first log)
        self._status: tuple[float, dict[str, Any]] | None = None  # (read at, answer) of the last status
        self.summary = ""  # the summary the program sent last (JSON text), for the finish script
        self._offered: socket.socket | None = None  # the program's end of the connected pair

    def offer(self) -> tuple[int, str]:
        """A connected socket for the program to inherit: its descriptor (for Popen's
        `pass_fds`) and the value of `FD_ENV` that names it. Call `handed_over` once the program
        has started."""
        import socket

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours.settimeout(_SEND_TIMEOUT)
        self._conns[ours.fileno()] = _Conn(ours)
        self._offered = theirs
        return theirs.fileno(), f"{theirs.fileno()}:{os.fstat(theirs.fileno()).st_ino}"

    def handed_over(self) -> None:
        """The program holds its end now (or never will): the runner closes its copy, so the
        connection ends when the program's last process does."""
        if self._offered is not None:
            self._offered.close()
            self._offered = None

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

        if self._listening:
            sel.register(self.fileno(), selectors.EVENT_READ, _LISTENER)
        for fd in self._conns:
            sel.register(fd, selectors.EVENT_READ, _CONNECTION)

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
            elif not self._listening:
                sel.unregister(key.fd)
        elif not self.serve(int(key.fd)):
            sel.unregister(key.fd)

    def accept(self) -> int | None:
        """Take one waiting connection (None if there is none); returns its descriptor, for the
        caller's select loop (`serve`)."""
        if not self._listening:
            return None
        try:
            sock, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as err:  # out of descriptors (EMFILE, ENFILE): no more connections
            self._stop_listening(err)
            return None
        # Replies are small, but a program that never reads them must not hold the runner's
        # loop for ever: a send that cannot proceed for this long drops the connection.
        sock.settimeout(_SEND_TIMEOUT)
        self._conns[sock.fileno()] = _Conn(sock)
        self.connected = True
        return int(sock.fileno())

    def _stop_listening(self, why: OSError) -> None:
        """The socket file goes (a process connecting later is refused at once, rather than
        queued where nobody will answer it); the connections already made are still served."""
        import sys

        print(f"sweepq: the trial's channel takes no more connections: {why}", file=sys.stderr)
        self._listening = False
        self._close_listener()

    def _close_listener(self) -> None:
        self._listener.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass

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
        if b"\n" not in chunk:  # a part of a long line: kept, and not searched again
            conn.buffer += chunk
        else:
            *lines, rest = bytes(conn.buffer + chunk).split(b"\n")
            conn.buffer = bytearray(rest)
            self._reply(fd, self._answers(lines, deaf=conn.deaf))
        if len(conn.buffer) <= _MAX_LINE:
            return True
        # A line longer than any row: refused, and the connection with it.
        self._reply(fd, [{"error": f"a request longer than {_MAX_LINE} bytes"}])
        self._drop(fd)
        return False

    def _reply(self, fd: int, replies: list[dict[str, Any]]) -> None:
        """Send replies, in one write. A program that went away (it does not wait for every
        answer) gets no more replies, but what it sent before is still served."""
        conn = self._conns[fd]
        if replies and not conn.deaf:
            framed: dict[int, bytes] = {}  # the rows of a batch share one answer: framed once
            for reply in replies:
                if id(reply) not in framed:
                    framed[id(reply)] = _frame(reply)
            try:
                conn.sock.sendall(b"".join(framed[id(reply)] for reply in replies))
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

    def _answers(self, lines: list[bytes], *, deaf: bool) -> list[dict[str, Any]]:
        """The answers to request lines, in order (a hello is answered by nothing). The rows of
        consecutive logs go to Redis in one round trip, and each gets the trial's state after
        the last: a program that logs faster than one round trip per row is not slowed to it.
        A question nobody will read (`deaf`) is not asked of Redis, and the stop status is read
        from Redis at most every `_STATUS_EVERY` seconds: a program flooding its channel must
        not turn into a flood of Redis reads."""
        import json

        answers: list[dict[str, Any]] = []
        rows: list[LogRecord] = []
        for line in lines:
            try:
                request = json.loads(line.decode("utf-8", "surrogatepass"))  # as the SDK encoded it
                if not isinstance(request, dict):
                    raise TypeError("a request is a JSON object")
                if request.get("op") == "log":
                    rows.append(_record(request))
                    continue
            except Exception as err:  # noqa: BLE001 - a bad request is answered, never fatal
                self._log_rows(rows, answers)
                answers.append(_error(err))
                continue
            self._log_rows(rows, answers)
            answer = self._answer(request, deaf=deaf)
            if answer is not None:
                answers.append(answer)
        self._log_rows(rows, answers)
        return answers

    def _log_rows(self, rows: list[LogRecord], answers: list[dict[str, Any]]) -> None:
        """Send the rows gathered so far (one answer each), and start a new batch."""
        if not rows:
            return
        try:
            state, stop = self.link.log_records(rows)
            answer: dict[str, Any] = {"state": state, "stop": stop}
            self._marked = True
        except Exception as err:  # noqa: BLE001 - a failed request is answered, never fatal
            answer = _error(err)
        answers.extend([answer] * len(rows))
        rows.clear()

    def _answer(self, request: dict[str, Any], *, deaf: bool) -> dict[str, Any] | None:
        """The answer to one request other than a log (None: a request answered by nothing)."""
        import time

        try:
            op = request.get("op")
            if op == "hello":
                self.connected = True
                return None
            if op == "status":
                if deaf:
                    return {}
                now = time.monotonic()
                if self._status is None or now - self._status[0] > _STATUS_EVERY:
                    self._status = (now, _serve(self.link, request))
                return self._status[1]
            fields = request.get("fields")
            if op == "annotate" and isinstance(fields, dict) and list(fields) == ["summary"]:
                if not isinstance(fields["summary"], str):
                    raise TypeError("a summary is JSON text")
                self.summary = fields["summary"]  # written by the finish script
                return {"ok": True}
            return _serve(self.link, request)
        except Exception as err:  # noqa: BLE001 - a bad request is answered, never fatal
            return _error(err)

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
        self.handed_over()
        for fd in list(self._conns):
            self._drop(fd)
        if self.connected and not self._marked:  # init() and no log: still an SDK program
            try:
                self.link.annotate(sdk=1)
            except Exception:  # noqa: BLE001, S110 - best effort, as the mark always was
                pass
        self._close_listener()


class _Conn:
    """One program connection: its socket and the bytes of a request not yet complete."""

    __slots__ = ("sock", "buffer", "deaf")

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.deaf = False  # the program closed its end: answers go nowhere


_SEND_TIMEOUT = 10.0
_MAX_LINE = 16 * 1024 * 1024  # one log() row; bigger rows are refused, not buffered forever
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
    """The reply to one request other than a log (`ChannelServer._log_rows` sends those)."""
    from collections.abc import Mapping

    op = req.get("op")
    if op == "attach":  # a program without the attach file asks (`SocketLink.attach`)
        return _attach_reply(link)
    if op == "annotate":
        fields = req.get("fields")
        return {"ok": isinstance(fields, Mapping) and link.annotate(**dict(fields))}
    if op == "status":
        return {"stop": link.must_stop()}
    raise ValueError(f"unknown request {op!r}")


def _record(req: dict[str, Any]) -> LogRecord:
    """A log request's row, as the store takes it (what is not a number is no metric value).
    `req` is parsed JSON, so its row is a dict or no row."""
    value = req.get("value")
    number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    row = req.get("row")
    return LogRecord(int(req.get("step", 0)), row if isinstance(row, dict) else {}, number)


def _error(err: Exception) -> dict[str, Any]:
    return {"error": f"{type(err).__name__}: {err}"}


def _frame(reply: Mapping[str, Any]) -> bytes:
    """A reply as the program reads it: its length, then its `marshal` form. What marshal cannot
    hold (it only ever holds JSON values here) goes through JSON first, as text."""
    try:
        data = marshal.dumps(dict(reply))
    except ValueError:
        import json

        data = marshal.dumps(json.loads(json.dumps(reply, default=str)))
    return len(data).to_bytes(4, "big") + data
