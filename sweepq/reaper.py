"""Every process a trial starts ends with the trial: a child subreaper instead of a /proc scan.

A work horse (RQ's per-job horse, or the warm worker's long-lived one) marks itself a child
subreaper (Linux `PR_SET_CHILD_SUBREAPER`). A process its program started that then left the
process group (`setsid`, a double-forked daemon) is still the horse's descendant, and once its
own parent exits the kernel makes it the horse's child. So "is anything of the trial left?" is one
`waitid` on the horse's children (no child at all: nothing is left), and the common case, a
program that left nothing behind, costs one syscall instead of a scan of /proc. Only when
something is left are the children's pids read (the kernel offers no cheaper list where
/proc/PID/task/TID/children is missing), killed, and the loop repeated for their children,
which the kernel reparents to us as each one dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import time

__all__ = ["become_subreaper", "children", "end_children", "has_children", "is_subreaper"]

_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37


@functools.cache
def libc() -> ctypes.CDLL:
    """The C library, opened once per process (a trial arms two prctl flags; each `CDLL(None)`
    costs a dlopen and a symbol table)."""
    return ctypes.CDLL(None, use_errno=True)


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants; False where the OS cannot."""
    try:
        return int(libc().prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def is_subreaper() -> bool:
    try:
        flag = ctypes.c_int(0)
        return int(libc().prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0)) == 0 and flag.value != 0
    except (OSError, AttributeError):
        return False


def has_children(*, keep: tuple[int, ...] = ()) -> bool:
    """Is any child left (alive, or exited and not reaped)? Exited children are reaped on the way,
    except those in `keep` (a program whose exit status its `Popen` still has to collect)."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return False
        if info is None or info.si_pid in keep:
            return True
        with contextlib.suppress(ChildProcessError):
            os.waitpid(info.si_pid, 0)


def children(*, exclude: tuple[int, ...] = ()) -> list[int]:
    """This process's live children, read from /proc (only called when something is left)."""
    me = str(os.getpid())
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in exclude:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and fields[1] == me and fields[0] != "Z":
            out.append(int(entry))
    return out


def signal_children(sig: int, *, exclude: tuple[int, ...] = ()) -> int:
    pids = children(exclude=exclude)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
    return len(pids)


def end_children(grace: float, *, exclude: tuple[int, ...] = (), term: bool = True) -> None:
    """SIGTERM every child, up to `grace` seconds for them to go, then SIGKILL until none is left
    (each killed child's own children become ours and are killed in the next round)."""
    if not exclude and not has_children():
        return
    if term and signal_children(signal.SIGTERM, exclude=exclude):
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _left(exclude):
            time.sleep(0.02)
    deadline = time.monotonic() + 5.0
    while _left(exclude) and time.monotonic() < deadline:
        signal_children(signal.SIGKILL, exclude=exclude)
        time.sleep(0.01)


def _left(exclude: tuple[int, ...]) -> bool:
    if not exclude:
        return has_children()
    has_children(keep=exclude)  # reap what exited; the excluded ones are not ours to judge
    return bool(children(exclude=exclude))
