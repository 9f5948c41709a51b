"""The trial program's end of its line to sweepq: the standard library only.

Every subprocess trial that uses the SDK imports this module, so it holds only what the program
needs (the runner's end, `sweepq.channel`, is never loaded there) and nothing that start-up has
not loaded already: no `from __future__` (annotations are strings), no `typing`, `socket`,
`json` or `re` (together ~15 ms of a trial's start). The runner hands the program a connected
socket (`FD_ENV`), so the SDK reads and writes a descriptor with `os` and never loads `_socket`
(~0.5 ms); a program started by the program (a launcher's child, whose descriptors Python's
`subprocess` closes) connects to the socket file `ENV` names instead, and so does a process
forked after `init()` (its own connection: one shared would mix the two processes' answers).

The protocol (see `sweepq.channel` for the runner's side): a request is one JSON object per
line, written by `to_json`; a reply is a `marshal`led dict after its length (4 bytes,
big-endian), read with `marshal`, which start-up has loaded. `marshal` is only ever read by the
program, from its own runner; the runner reads the program's requests with `json`.
    {"op": "hello"}                                  -> no answer (init(): the program reports through the SDK)
    {"op": "attach"}                                 -> {"sweep", "trial", "attempt", "params", "metric"}
                                                        (the SDK reads it from `ATTACH_ENV`'s file instead)
    {"op": "log", "step", "row", "value"}            -> {"state", "stop"}
    {"op": "annotate", "fields": {...}}              -> {"ok"}
    {"op": "status"}                                 -> {"stop"}  (true when the attempt must end)
"""

import _thread
import _weakref
import marshal
import os
from abc import ABC, abstractmethod

TYPE_CHECKING = False
if TYPE_CHECKING:
    import _socket
    from collections.abc import Mapping
    from typing import Any

__all__ = ["ATTACH_ENV", "ENV", "FD_ENV", "Attached", "SocketLink", "TrialLink", "link_from_env", "to_json"]

ENV = "SWEEPQ_CHANNEL"  # the socket file, for any process of the trial
FD_ENV = "SWEEPQ_CHANNEL_FD"  # "descriptor:inode" of the connected socket the program inherits
ATTACH_ENV = "SWEEPQ_ATTACH"  # the attach reply, written by the runner before the program starts


class Attached:
    """What the program learns of its trial when it attaches."""

    __slots__ = ("sweep_id", "number", "attempt", "params", "metric", "project", "entity", "marked")

    def __init__(
        self,
        sweep_id: str,
        number: int,
        attempt: int,
        params: "dict[str, Any]",
        metric: "str | None",
        project: "str | None" = None,
        entity: "str | None" = None,
        marked: bool = False,
    ) -> None:
        self.sweep_id, self.number, self.attempt, self.params = sweep_id, number, attempt, params
        self.metric, self.project, self.entity = metric, project, entity
        self.marked = marked  # the trial is already marked as reporting through the SDK


class TrialLink(ABC):
    """How the SDK talks to its trial: four requests, all about its own attempt."""

    @abstractmethod
    def attach(self) -> "Attached": ...

    @abstractmethod
    def log(self, step: int, row: "Mapping[str, Any]", value: "float | None") -> "tuple[str, str]":
        """Append one row; returns (trial state, stop request or ''), as of this row or, for a
        link that does not wait for its rows (`SocketLink`), as of the row before."""

    @abstractmethod
    def latest(self) -> "tuple[str, str]":
        """(trial state, stop request or '') as of the last row sent, waiting for its answer."""

    @abstractmethod
    def annotate(self, **fields: "Any") -> bool: ...

    @abstractmethod
    def must_stop(self) -> bool: ...

    def finish(self, summary: str) -> None:
        """The run's last word, its summary (JSON text); nothing waits for the answer."""
        self.annotate(summary=summary)


_in_process: "TrialLink | None" = None


def set_in_process(link: "TrialLink | None") -> None:
    """Function mode: the runner hands the SDK the link of the trial it is running in this very
    process (its own store and records: no new connection, no read of what it already holds)."""
    global _in_process
    _in_process = link


def link_from_env() -> "TrialLink | None":
    """The link a trial's environment offers: the runner's own (function mode, set by the runner),
    the socket the program inherited or the runner's socket file, or Redis directly (a function
    run by a runner of another version); None outside a sweep."""
    if _in_process is not None:
        return _in_process
    fd = _inherited(os.environ.pop(FD_ENV, ""))
    path = os.environ.get(ENV)
    if fd is not None or path:
        return SocketLink(path, fd=fd)
    if os.environ.get("SWEEPQ_REDIS_URL") and os.environ.get("SWEEPQ_SWEEP_ID") and os.environ.get("SWEEPQ_TRIAL"):
        from sweepq.channel import DirectLink
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


def _inherited(spec: str) -> "int | None":
    """The runner's socket named by `FD_ENV`, if this process really holds it: the descriptor
    open, a socket, and the inode the runner wrote (a child whose descriptor was closed, and
    its number reused for a file, must not write requests into that file). Taken from the
    environment when read, so a process this one starts does not look for it again."""
    number, _, inode = spec.partition(":")
    if not (number.isdigit() and inode.isdigit()):
        return None
    try:
        st = os.fstat(int(number))
    except (OSError, OverflowError):
        return None
    return int(number) if st.st_mode & 0o170000 == 0o140000 and st.st_ino == int(inode) else None


class SocketLink(TrialLink):
    """The program's end: the standard library only.

    A row is sent without waiting for its answer (the runner writes it to Redis while the
    program goes on training, as wandb's own `log` does not wait either): `log` reads the
    answers that have already come, without waiting, and returns the latest, so a stop request
    reaches the program at the first `log()` after the runner answered (the runner's SIGTERM
    does not wait for it at all). A program that logs faster than its runner answers keeps at
    most `_MAX_OWED` answers unread (then it waits for half of them): they fit in the socket's
    buffer many times over, so the runner never blocks sending them while the program blocks
    sending rows. Every other request waits, after the answers still owed. The last word
    (`finish`) waits for nothing: the runner reads what a program sent before it exited."""

    def __init__(self, path: "str | None" = None, *, fd: "int | None" = None) -> None:
        """Over the connected socket `fd` (inherited), else a new connection to `path`."""
        if fd is None and not path:
            raise ValueError("SocketLink needs a socket file or an inherited descriptor")
        self._path = path
        self._sock: _socket.socket | None = None
        self._fd: int = self._connect() if fd is None else fd
        self._lock = _thread.allocate_lock()
        self._buffer = b""
        self._owed: list[str] = []  # ops whose answers are not read yet, oldest first
        self._state = ("running", "")  # the last answer to a row
        self._send({"op": "hello"})  # answered by nothing: init() waits for no round trip
        me = _weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forked(me))

    def _connect(self) -> int:
        import _socket

        if not self._path:
            raise ConnectionError(f"a forked process of this trial has no socket file ({ENV}) to reach its runner")
        self._sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self._sock.connect(self._path)
        return int(self._sock.fileno())

    def _after_fork(self) -> None:
        """In a forked process (rollout workers, a data loader's): the parent's connection stays
        the parent's. Shared, each process would read answers meant for the other (and wait for
        ever for its own); the child's first request opens its own connection instead, to the
        socket file. Its lock is new: another thread may have held the parent's at the fork."""
        self._lock = _thread.allocate_lock()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        elif self._fd >= 0:
            os.close(self._fd)
        self._fd, self._buffer, self._owed = -1, b"", []

    def _ask(self, request: "Mapping[str, Any]") -> "dict[str, Any]":
        with self._lock:
            self._catch_up(0)
            self._send(request)
            return self._answer()

    def _notify(self, request: "Mapping[str, Any]") -> None:
        """Send a request whose answer is read later, with the next one waited for."""
        with self._lock:
            self._send(request)
            self._owed.append(str(request["op"]))

    def _send(self, request: "Mapping[str, Any]") -> None:
        if self._fd < 0:  # forked: this process's own connection, first
            self._fd = self._connect()
            self._send({"op": "hello"})
        data = memoryview(to_json(request).encode("utf-8", "surrogatepass") + b"\n")
        while data:
            data = data[os.write(self._fd, data) :]

    def _catch_up(self, keep: int) -> None:
        """Read the answers owed until at most `keep` are left."""
        while len(self._owed) > keep:
            self._apply(self._owed.pop(0), self._answer())

    def _collect(self) -> None:
        """Take the answers that have already come, without waiting for any."""
        os.set_blocking(self._fd, False)
        try:
            while True:
                chunk = os.read(self._fd, 65536)
                self._buffer += chunk
                if len(chunk) < 65536:
                    break  # read to the end of what has come (or the runner closed the socket)
        except BlockingIOError:
            pass
        finally:
            os.set_blocking(self._fd, True)
        buf, pos, failed = self._buffer, 0, None
        while self._owed and len(buf) - pos >= 4:
            end = pos + 4 + int.from_bytes(buf[pos : pos + 4], "big")
            if end > len(buf):
                break
            op, frame, pos = self._owed.pop(0), buf[pos + 4 : end], end
            try:
                self._apply(op, _reply(frame))
            except ValueError as err:
                failed = failed or err
        self._buffer = buf[pos:]
        if failed is not None:
            raise failed

    def _apply(self, op: str, reply: "dict[str, Any]") -> None:
        if op == "log":
            self._state = (str(reply["state"]), str(reply.get("stop") or ""))

    def _answer(self) -> "dict[str, Any]":
        head = self._read(4)
        frame = self._read(int.from_bytes(head, "big")) if len(head) == 4 else b""
        return _reply(frame)

    def _read(self, n: int) -> bytes:
        """Exactly `n` bytes of the reply stream (fewer when the runner closed the socket)."""
        while len(self._buffer) < n:
            chunk = os.read(self._fd, 65536)
            if not chunk:
                break
            self._buffer += chunk
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def attach(self) -> "Attached":
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

    def log(self, step: int, row: "Mapping[str, Any]", value: "float | None") -> "tuple[str, str]":
        with self._lock:
            self._send({"op": "log", "step": step, "row": row, "value": value})
            self._owed.append("log")
            self._collect()  # the answers that came while the program worked
            if len(self._owed) > _MAX_OWED:
                self._catch_up(_MAX_OWED // 2)
            return self._state

    def latest(self) -> "tuple[str, str]":
        with self._lock:
            self._catch_up(0)
            return self._state

    def annotate(self, **fields: "Any") -> bool:
        return bool(self._ask({"op": "annotate", "fields": fields})["ok"])

    def must_stop(self) -> bool:
        return bool(self._ask({"op": "status"})["stop"])

    def finish(self, summary: str) -> None:
        self._notify({"op": "annotate", "fields": {"summary": summary}})


_MAX_OWED = 512  # unread answers (~35 bytes each) a program may leave before it waits


def _forked(link: "Any") -> None:
    """The at-fork hook of a link, by weak reference (a closed link is not kept for it)."""
    alive = link()
    if alive is not None:
        alive._after_fork()


def _reply(frame: bytes) -> "dict[str, Any]":
    if not frame:
        raise ConnectionError("the sweepq runner closed the trial channel")
    reply: dict[str, Any] = marshal.loads(frame)
    if "error" in reply:
        raise ValueError(f"sweepq runner: {reply['error']}")
    return reply


# JSON string escapes: the quote, the backslash and every control character.
_ESCAPES = {**{c: f"\\u{c:04x}" for c in range(32)}, ord('"'): '\\"', ord("\\"): "\\\\"}


def to_json(value: "Any") -> str:
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
        if value in (_INF, -_INF):
            return "Infinity" if value > 0 else "-Infinity"
        return float.__repr__(value)
    if isinstance(value, str):
        return '"' + value.translate(_ESCAPES) + '"'
    if isinstance(value, dict):
        return "{" + ",".join(to_json(str(k)) + ":" + to_json(v) for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    return to_json(str(value))


_INF = float("inf")
