"""Loaded by every Python process of the round-trip benchmark (it is on PYTHONPATH): counts each
request redis-py sends (one command, or one whole pipeline) as one round trip, by appending a
byte to the file named in SWEEPQ_RT_FILE. A byte per round trip survives `os._exit` (RQ's work
horses end that way), which an atexit counter would not."""

import os

_path = os.environ.get("SWEEPQ_RT_FILE")
if _path:
    try:
        import redis.connection as _rc
    except ImportError:  # a program without redis-py: nothing to count
        _rc = None
    if _rc is not None:
        _fd = os.open(_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        _send = _rc.AbstractConnection.send_packed_command

        import sys

        _detail = bool(os.environ.get("SWEEPQ_RT_DETAIL"))
        _role = " ".join(a.rsplit("/", 1)[-1] for a in sys.argv[:3])

        def _counted(self, command, check_health=True):  # type: ignore[no-untyped-def]
            if not _detail:
                os.write(_fd, b"x")
            else:  # one line per round trip: pid, role, the first command's name
                first = command[0] if isinstance(command, list) else command
                head = bytes(first[:60]).split(b"\r\n")
                name = head[2].decode(errors="replace") if len(head) > 2 else "?"
                os.write(_fd, f"{os.getpid()} {_role} {name}\n".encode())
            return _send(self, command, check_health)

        _rc.AbstractConnection.send_packed_command = _counted
