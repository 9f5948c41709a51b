"""The trial program's channel to its runner: no Redis credential, its own attempt only."""

from __future__ import annotations

import json
import marshal
import math
import os
import socket
import sys
import time
from pathlib import Path

import pytest
import redis

from sweepq import config as cfgmod
from sweepq.channel import ChannelServer, SocketLink
from sweepq.model import Settings
from sweepq.runner import execute
from sweepq.store import Store

SDK_PROGRAM = """
import json, os, sys
import sweepq
run = sweepq.init(config={"x": -1})
for i in range(3):
    sweepq.log({"loss": run.config["x"] + i})
print(json.dumps({"redis": "redis" in sys.modules, "url": "SWEEPQ_REDIS_URL" in os.environ,
                  "x": run.config["x"], "stop": run.should_stop}))
"""


def _sweep(store: Store, tmp_path: Path, source: str) -> str:
    (tmp_path / "prog.py").write_text(source)
    cfg = cfgmod.load(
        {
            "program": "prog.py",
            "command": [sys.executable, "${program}"],
            "method": "random",
            "metric": {"name": "loss"},
            "parameters": {"x": {"min": 0.0, "max": 1.0}},
        }
    )
    sid = store.create_sweep(cfg, Settings(workdir=str(tmp_path), seed=1))
    store.create_trial(sid, 0, params={"x": 0.5}, encoded={"x": 0.5})
    return sid


def test_an_sdk_program_reports_through_its_runner_and_holds_no_redis_credential(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    store = Store(r)
    sid = _sweep(store, tmp_path, SDK_PROGRAM)
    assert execute(store, sid, 0, attempt=1, url=redis_url, worker="w") == "finished"
    report = json.loads(store.output(sid, 0)[-1])
    assert report == {"redis": False, "url": False, "x": 0.5, "stop": False}
    trial = store.trial(sid, 0)
    assert trial.uses_sdk and trial.history_len == 3 and trial.best == 0.5


def test_the_channel_serves_only_its_own_attempt(r: redis.Redis, tmp_path: Path) -> None:
    store = Store(r)
    sid = _sweep(store, tmp_path, "")
    trial = store.claim(sid, 0, attempt=1, worker="w", host="h").trial
    assert trial is not None
    path = str(tmp_path / "c.sock")
    with ChannelServer(store, store.sweep(sid), trial, path):
        link = SocketLink(path)
        attached = link.attach()
        assert attached.params == {"x": 0.5}
        assert attached.marked  # the SDK need not mark the trial: its first log does...
        assert link.log(0, {"loss": 0.3}, 0.3) == ("running", "")  # sent, its answer not awaited
        assert not link.annotate(state="finished", reason="forged")  # not the program's to set
        assert store.trial(sid, 0).uses_sdk  # ...served before the next request
        # A raw client gets a clear error for nonsense, and the server keeps serving.
        with socket.socket(socket.AF_UNIX) as raw:
            raw.connect(path)
            raw.sendall(b'{"op": "flushall"}\nnot json\n')
            replies = raw.makefile("rb")

            def reply() -> dict[str, str]:
                return dict(marshal.loads(replies.read(int.from_bytes(replies.read(4), "big"))))

            assert "unknown request" in reply()["error"] and "error" in reply()
        store.finish(sid, 0, attempt=1, outcome="requeue", reason="preempted")  # attempt 2 now
        # A row's answer is taken by the first log after it came (the program never waits for it).
        assert link.log(1, {"loss": 0.1}, 0.1)[0] == "running"
        deadline = time.monotonic() + 5
        while link.log(2, {"loss": 0.1}, 0.1)[0] != "stale":
            assert time.monotonic() < deadline, "the attempt's end never reached the program"
            time.sleep(0.01)
        assert link.must_stop()
    t = store.trial(sid, 0)
    assert t.attempt == 2 and t.history_len == 0 and t.state == "queued"


def test_the_programs_requests_read_back_as_json_dumps_would_write_them() -> None:
    """The SDK writes its requests without the json module (`channel.to_json`): the runner must read
    back exactly what `json.dumps(..., default=str)` would have sent, for every value a row holds."""
    from sweepq.link import to_json

    class Odd:
        def __str__(self) -> str:
            return "<odd>"

    values = [
        None,
        True,
        False,
        0,
        -7,
        2**80,
        1.5,
        -0.0,
        1e-310,
        1e300,
        float("nan"),
        float("inf"),
        float("-inf"),
        'quote " backslash \\ newline \n tab \t nul \x00 unit \x1f del \x7f é 漢 😀 lone \ud800',
        {"nested": {"list": [1, 2.5, "x", None], "tuple": (True, False)}},
        Odd(),
        [Odd(), {"k": Odd()}],
    ]
    for value in values:
        sent = json.loads(to_json({"v": value}).encode("utf-8", "surrogatepass"))["v"]
        expected = json.loads(json.dumps({"v": value}, default=str))["v"]
        if isinstance(expected, float) and math.isnan(expected):
            assert isinstance(sent, float) and math.isnan(sent)
        else:
            assert sent == expected and type(sent) is type(expected), (value, sent, expected)


LEAN_PROGRAM = """
import atexit, sys
# Registered first, so it runs last: after the SDK's own exit hook has sent the summary. What a
# bare start already loaded (an editable install's finder loads re, say) does not count.
COSTLY = {"json", "re", "fnmatch", "importlib", "collections", "typing", "numbers", "math", "_socket", "__future__",
          "sweepq.channel"}
BARE = set(sys.modules)
atexit.register(lambda: print("LOADED", sorted((set(sys.modules) - BARE) & COSTLY)))
import sweepq
run = sweepq.init()
sweepq.log({"loss": run.config["x"]})
"""


def test_an_sdk_trial_loads_no_json_re_or_importlib_from_start_to_exit(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """Every subprocess trial that uses the SDK pays what its import, init, log and exit load:
    none of the modules that cost milliseconds at start-up (issue 13), nor `_socket` (it talks
    over the socket it inherited) or the runner's end of the channel."""
    store = Store(r)
    sid = _sweep(store, tmp_path, LEAN_PROGRAM)
    assert execute(store, sid, 0, attempt=1, url=redis_url, worker="w") == "finished"
    assert store.output(sid, 0)[-1] == "LOADED []"
    trial = store.trial(sid, 0)
    assert trial.uses_sdk and trial.history_len == 1 and trial.best == 0.5


def test_the_metric_value_of_a_log_is_a_finite_float_whatever_was_logged() -> None:
    """`_number` decides what the pruner and the sampler see: plain numbers as they are, numpy
    and torch scalars through `.item()`, everything else (bools, NaN, inf, strings, tensors of
    many) as no value."""
    import fractions

    import numpy as np

    from sweepq.sdk import _number

    for value, expected in (
        (3, 3.0),
        (0.25, 0.25),
        (np.float32(0.5), 0.5),
        (np.int64(7), 7.0),
        (np.array(2.5), 2.5),
        (fractions.Fraction(1, 4), 0.25),
    ):
        got = _number(value)
        assert got == expected and type(got) is float, (value, got)
    for value in (True, np.bool_(True), None, float("nan"), float("inf"), -float("inf"), np.float64("nan"), "0.1"):
        assert _number(value) is None, value
    assert _number(np.array([1.0, 2.0])) is None


def test_a_torch_tensor_metric_is_its_value_or_none_never_an_error() -> None:
    """torch raises RuntimeError (not numpy's ValueError) from `.item()` on many elements:
    `log()` raised it before. Skipped where torch is not installed (CI's default install)."""
    torch = pytest.importorskip("torch")
    from sweepq.sdk import _number

    assert _number(torch.tensor(1.5)) == 1.5
    assert _number(torch.tensor([1.0, 2.0])) is None
    assert _number(torch.tensor(float("nan"))) is None


def test_a_program_that_exits_right_after_init_is_still_marked_as_using_the_sdk(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """A program that connects (init() waits for no reply) and exits without a log is still
    marked as using the SDK, even when the runner's loop only sees its connection after the exit
    (closing the channel accepts what is still waiting, and marks it)."""
    store = Store(r)
    for number in range(5):
        sid = _sweep(store, tmp_path, "import os, sweepq\nsweepq.init()\nos._exit(0)\n")
        assert execute(store, sid, 0, attempt=1, url=redis_url, worker="w") == "failed"
        trial = store.trial(sid, 0)
        assert trial.uses_sdk, (number, trial)
        assert "never logged" in (trial.reason or "")


def test_init_reads_its_trial_from_the_attach_file_and_the_first_log_marks_the_trial(
    r: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`init()` waits for no reply: the runner wrote the attach reply to a file (here nothing serves
    the socket while the link attaches: a request would never be answered). The first log marks
    the trial as using the SDK; a program that connected and never logged (even one whose
    connection the runner never got to accept) is marked when the channel closes."""
    import threading

    from sweepq.link import ATTACH_ENV

    store = Store(r)
    sid = _sweep(store, tmp_path, "")
    trial = store.claim(sid, 0, attempt=1, worker="w", host="h").trial
    assert trial is not None
    server = ChannelServer(store, store.sweep(sid), trial, str(tmp_path / "c.sock"))
    server.write_attach(str(tmp_path / "attach"))
    monkeypatch.setenv(ATTACH_ENV, str(tmp_path / "attach"))
    got: list[object] = []
    link = SocketLink(server.path)
    attaching = threading.Thread(target=lambda: got.append(link.attach()), daemon=True)
    attaching.start()
    attaching.join(timeout=5)
    assert got, "attach() waited for the runner"
    attached = got[0]
    assert attached.params == {"x": 0.5} and attached.marked and attached.attempt == 1  # type: ignore[attr-defined]
    assert not store.trial(sid, 0).uses_sdk
    fd = server.accept()
    assert fd is not None and server.connected and server.accept() is None  # nothing else waits
    # The first log marks the trial in Redis (the log script): one round trip, not two. The
    # program does not wait for the row's answer (none is served yet when log() returns).
    assert link.log(0, {"loss": 0.2}, 0.2) == ("running", "")
    server.serve(fd)
    assert store.trial(sid, 0).uses_sdk and store.trial(sid, 0).history_len == 1

    sid2 = _sweep(store, tmp_path, "")
    trial2 = store.claim(sid2, 0, attempt=1, worker="w", host="h").trial
    assert trial2 is not None
    late = ChannelServer(store, store.sweep(sid2), trial2, str(tmp_path / "d.sock"))
    SocketLink(late.path)  # connects; nobody accepts before the close
    late.close()
    assert store.trial(sid2, 0).uses_sdk
    server.close()


def test_metrics_a_program_prints_do_not_count_once_it_reports_through_the_sdk(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """One source of truth per trial: printed `name=value` lines still reach the output, but once
    the program has called init() only what it logs counts (before and after its first log)."""
    store = Store(r)
    program = (
        "import sys, time, sweepq\nsweepq.init()\nprint('loss=100', flush=True)\ntime.sleep(0.2)\n"
        "sweepq.log({'loss': 0.5})\nprint('loss=200', flush=True)\n"
    )
    sid = _sweep(store, tmp_path, program)
    assert execute(store, sid, 0, attempt=1, url=redis_url, worker="w") == "finished"
    trial = store.trial(sid, 0)
    assert trial.uses_sdk and trial.history_len == 1 and trial.best == 0.5
    assert {"loss=100", "loss=200"} <= set(store.output(sid, 0))


def test_rows_and_the_summary_a_program_sent_just_before_exiting_are_all_recorded(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """The SDK does not wait for the answers to its rows nor for its last word (the summary):
    whatever the program sent before it exited is read and recorded by the runner."""
    store = Store(r)
    program = "import os, sweepq\nsweepq.init()\nfor i in range(50):\n    sweepq.log({'loss': 50 - i})\n"
    sid = _sweep(store, tmp_path, program)
    assert execute(store, sid, 0, attempt=1, url=redis_url, worker="w") == "finished"
    trial = store.trial(sid, 0)
    assert trial.uses_sdk and trial.history_len == 50 and trial.best == 1
    raw = r.hget(f"sweepq:{{{sid}}}:trial:0", "summary")
    assert raw is not None and json.loads(raw)["loss"] == 1


def test_a_program_that_floods_its_channel_and_never_reads_cannot_hold_its_runner(
    r: redis.Redis, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner answers from the loop that also follows the program: a program that sends
    requests and never reads the answers blocks the runner's send only for the send timeout,
    then gets no more answers, and its questions do not become one Redis read each; what it
    logged still counts and the trial ends normally."""
    from sweepq import channel

    monkeypatch.setattr(channel, "_SEND_TIMEOUT", 0.5)
    store = Store(r)
    program = (
        "import os, socket, sweepq\nsweepq.init()\nsweepq.log({'loss': 1.0})\n"
        "s = socket.socket(socket.AF_UNIX)\ns.connect(os.environ['SWEEPQ_CHANNEL'])\n"
        's.sendall(b\'{"op": "status"}\\n\' * 200000)\n'
    )
    sid = _sweep(store, tmp_path, program)
    started = time.monotonic()
    assert execute(store, sid, 0, attempt=1, url=redis_url, worker="w") == "finished"
    assert time.monotonic() - started < 10  # was 17 s when every status read Redis
    trial = store.trial(sid, 0)
    assert trial.uses_sdk and trial.best == 1.0


def test_a_process_the_program_starts_reports_through_the_socket_file(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """The program inherits a connected socket; a launcher's child does not (Python's subprocess
    closes descriptors it was not told to pass) and connects to the socket file instead."""
    store = Store(r)
    child = "import sweepq; sweepq.init(); sweepq.log({'loss': 0.25})"
    program = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {child!r}], check=True)\n"
    sid = _sweep(store, tmp_path, program)
    assert execute(store, sid, 0, attempt=1, url=redis_url, worker="w") == "finished"
    trial = store.trial(sid, 0)
    assert trial.uses_sdk and trial.history_len == 1 and trial.best == 0.25


def test_the_inherited_socket_is_used_only_if_it_is_the_runners(tmp_path: Path) -> None:
    """A descriptor number in the environment is trusted only when it is open, a socket, and the
    inode the runner wrote: a child whose number now holds a file must not write into it."""
    import os

    from sweepq.link import _inherited

    a, b = socket.socketpair()
    with a, b, open(tmp_path / "f", "wb") as f:
        inode = os.fstat(b.fileno()).st_ino
        assert _inherited(f"{b.fileno()}:{inode}") == b.fileno()
        assert _inherited(f"{a.fileno()}:{inode}") is None  # another socket
        assert _inherited(f"{f.fileno()}:{os.fstat(f.fileno()).st_ino}") is None  # a file
        assert _inherited(f"{b.fileno() + 1000}:{inode}") is None  # not open
        assert _inherited("") is None and _inherited("3") is None and _inherited("x:y") is None
        assert _inherited(f"{10**30}:{inode}") is None


def test_a_program_that_logs_faster_than_its_runner_answers_loses_no_row_and_keeps_their_order(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """`log()` never waits for its answer (at most 512 left unread) and the runner sends the rows
    that arrive together in one round trip: every row is recorded once, in order, and the
    program still learns of the end of its attempt."""
    store = Store(r)
    program = (
        "import sweepq\nsweepq.init()\n"
        "for i in range(3000):\n    sweepq.log({'loss': 3000 - i, 'i': i})\n"
        "print('link owed', len(sweepq.run._link._owed))\n"
    )
    sid = _sweep(store, tmp_path, program)
    assert execute(store, sid, 0, attempt=1, url=redis_url, worker="w") == "finished"
    trial = store.trial(sid, 0)
    assert trial.history_len == 3000 and trial.best == 1
    assert store.histories(sid, [0])[0] == [float(3000 - i) for i in range(3000)]
    owed = int(next(line for line in store.output(sid, 0) if line.startswith("link owed")).split()[-1])
    assert 0 <= owed <= 512


def test_processes_forked_after_init_log_on_their_own_connection_and_none_waits_for_ever(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """Rollout workers forked by a program that already called `init()` (multiprocessing's fork,
    as RL code does) log through the same run: each forked process gets its own connection to
    the runner, so no process reads another's answers, and every row is recorded once."""
    store = Store(r)
    program = (
        "import os, sweepq\n"
        "run = sweepq.init()\n"
        "sweepq.log({'loss': 1000.0})\n"
        "children = []\n"
        "for c in range(3):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        for i in range(700):\n"
        "            sweepq.log({'loss': 100.0 * (c + 1) + i / 1000})\n"
        "        stop = run.should_stop\n"
        "        os._exit(0 if stop is False else 3)\n"
        "    children.append(pid)\n"
        "for i in range(700):\n"
        "    sweepq.log({'loss': 50.0 + i / 1000})\n"
        "codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]\n"
        "assert codes == [0, 0, 0], codes\n"
        "sweepq.log({'loss': 0.5})\n"
    )
    sid = _sweep(store, tmp_path, program)
    started = time.monotonic()
    assert execute(store, sid, 0, attempt=1, url=redis_url, worker="w") == "finished", store.output(sid, 0)
    assert time.monotonic() - started < 60
    trial = store.trial(sid, 0)
    assert trial.history_len == 1 + 4 * 700 + 1 and trial.best == 0.5
    values = store.histories(sid, [0])[0]
    for c in range(3):  # each child's rows, once each and in its own order
        mine = [v for v in values if 100.0 * (c + 1) <= v < 100.0 * (c + 1) + 1]
        assert mine == [100.0 * (c + 1) + i / 1000 for i in range(700)]


def test_a_runner_out_of_descriptors_stops_taking_connections_and_serves_the_ones_it_has(
    r: redis.Redis, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A program that opens connections until its runner has no descriptor left (EMFILE) does
    not end the runner with a traceback: the socket file goes, so a later process is refused
    at once instead of waiting in a queue nobody reads, and the connections made still work."""
    import resource

    store = Store(r)
    sid = _sweep(store, tmp_path, "")
    trial = store.claim(sid, 0, attempt=1, worker="w", host="h").trial
    assert trial is not None
    path = str(tmp_path / "c.sock")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    held: list[socket.socket] = []
    with ChannelServer(store, store.sweep(sid), trial, path) as server:
        first = SocketLink(path)
        assert first.log(0, {"loss": 0.5}, 0.5) == ("running", "")
        assert first.must_stop() is False  # served: the server has taken this connection
        try:
            # Few descriptors left to this process (the server's thread is in it too).
            resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 6, hard))
            deadline = time.monotonic() + 10
            while os.path.exists(path):
                assert time.monotonic() < deadline, "the server kept listening with no descriptor left"
                try:
                    s = socket.socket(socket.AF_UNIX)
                except OSError:  # our side is out of descriptors too: free one for the server's
                    held.pop().close()
                    continue
                s.settimeout(0.5)  # a listener nobody accepts on would hold a connect for ever
                try:
                    s.connect(path)
                except OSError:
                    s.close()
                    continue
                held.append(s)
        finally:
            for s in held:
                s.close()
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        assert first.log(1, {"loss": 0.25}, 0.25)[0] == "running"
        assert first.must_stop() is False  # the connection made before still works
        with pytest.raises(OSError):
            SocketLink(path)  # refused at once: there is no socket file to wait on
        assert server._thread is not None and server._thread.is_alive()
    assert "takes no more connections" in capfd.readouterr().err
    assert store.trial(sid, 0).history_len == 2
