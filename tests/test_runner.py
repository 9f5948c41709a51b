"""The runner, in this process, with real subprocess programs and a real server."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from sweepq import config as cfgmod
from sweepq.model import Settings, StopKind, TrialState
from sweepq.runner import execute
from sweepq.store import Store


def _trial(store: Store, tmp_path: Path, source: str, **settings: float) -> str:
    (tmp_path / "prog.py").write_text(source)
    cfg = cfgmod.load(
        {
            "program": "prog.py",
            "command": [sys.executable, "${program}", "${args}"],
            "method": "random",
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"x": {"min": 0.0, "max": 1.0}},
        }
    )
    sid = store.create_sweep(cfg, Settings(workdir=str(tmp_path), seed=1, **settings))  # type: ignore[arg-type]
    assert store.create_trial(sid, 0, params={"x": 0.25}, encoded={"x": 0.25}) == "ok"
    return sid


def _execute(store: Store, sid: str, redis_url: str, **kw: object) -> str:
    return execute(store, sid, 0, attempt=1, url=redis_url, worker="test-runner", **kw)  # type: ignore[arg-type]


def test_printed_metrics_and_output_reach_the_trial(r: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    store = Store(r)
    source = "import sys\nfor i in range(40):\n    print(f'step={i} loss={1 / (i + 1)}')\nprint(sys.argv[1:])\n"
    sid = _trial(store, tmp_path, source)
    assert _execute(store, sid, redis_url) == "finished"
    trial = store.trial(sid, 0)
    assert trial.history_len == 40 and trial.best == 1 / 40 and trial.exit_code == 0
    out = store.output(sid, 0)
    assert out[0] == "step=0 loss=1.0" and out[-1] == "['--x=0.25']"


def test_metric_lines_that_arrive_together_go_to_redis_together_in_order(
    r: redis.Redis, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A program printing metrics in a tight loop: the lines one read of its output brings are
    sent in one round trip, not one per line, and every row is kept, in order."""
    calls: list[int] = []
    real_log = Store.log

    def counted(self: Store, *args: object, **kw: object) -> object:
        calls.append(len(kw.get("records", ())))  # type: ignore[arg-type]
        return real_log(self, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "log", counted)
    store = Store(r)
    # one write of 300 lines (the runner reads them in one or a few chunks), then one more
    source = (
        "import sys\nsys.stdout.write(''.join(f'step={i} loss={300 - i}\\n' for i in range(300)))\n"
        "sys.stdout.flush()\nprint('loss=0.5')\n"
    )
    sid = _trial(store, tmp_path, source)
    assert _execute(store, sid, redis_url) == "finished"
    trial = store.trial(sid, 0)
    assert trial.history_len == 301 and trial.best == 0.5
    assert store.histories(sid, [0])[0] == [float(300 - i) for i in range(300)] + [0.5]
    assert sum(calls) == 301 and len(calls) <= 10, calls


def test_a_stop_request_ends_the_program_and_the_trial_is_killed(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    store = Store(r)
    sid = _trial(store, tmp_path, "import time\nprint('loss=0.5', flush=True)\ntime.sleep(120)\n", grace=1.0)

    def _kill_when_logged() -> None:
        deadline = time.monotonic() + 30
        while store.trial(sid, 0).history_len == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        store.request_stop(sid, 0, kind=StopKind.KILL, reason="killed by test")

    threading.Thread(target=_kill_when_logged, daemon=True).start()
    started = time.monotonic()
    assert _execute(store, sid, redis_url) == "killed"
    assert time.monotonic() - started < 30  # not the program's 120 s
    assert store.trial(sid, 0).reason == "killed by test"


def test_the_time_limit_fails_a_hanging_program(r: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    store = Store(r)
    sid = _trial(store, tmp_path, "import time\nprint('loss=1')\ntime.sleep(120)\n", time_limit=1.0, grace=0.5)
    assert _execute(store, sid, redis_url) == "failed"
    assert "time limit of 1s" in (store.trial(sid, 0).reason or "")


def test_a_finished_program_that_never_logged_the_metric_failed(r: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    store = Store(r)
    sid = _trial(store, tmp_path, "print('accuracy=0.9')\n")
    assert _execute(store, sid, redis_url) == "failed"
    assert "'loss' was never logged" in (store.trial(sid, 0).reason or "")


def test_function_mode_is_stopped_through_log(r: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    import sweepq

    store = Store(r)
    sid = _trial(store, tmp_path, "")
    seen: list[float] = []

    def train() -> None:
        run = sweepq.init()
        seen.append(run.config["x"])
        for i in range(10_000):
            sweepq.log({"loss": 1.0 / (i + 1)})
            if i == 3:
                store.request_stop(sid, 0, kind=StopKind.PRUNE, reason="pruned by test")
            time.sleep(0.01)

    assert _execute(store, sid, redis_url, function=train) == "pruned"
    trial = store.trial(sid, 0)
    assert seen == [0.25] and trial.state is TrialState.PRUNED and trial.history_len == 5


def test_a_superseded_attempt_cannot_run(r: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    store = Store(r)
    sid = _trial(store, tmp_path, "open('ran', 'w').write('1')\nprint('loss=1')\n")
    assert execute(store, sid, 0, attempt=2, url=redis_url, worker="w") == "stale"
    assert not (tmp_path / "ran").exists()


def _started_state(tmp_path: Path, *, sigterm: object) -> dict[str, object]:
    """Start tests/programs/child_state.py the way the runner starts a program, with the given
    SIGTERM disposition in this (the runner's) process, and read what the program started with."""
    import json
    import os
    import signal

    from sweepq import runner

    previous = signal.signal(signal.SIGTERM, sigterm)  # type: ignore[arg-type]
    try:
        proc = runner._start(
            [sys.executable, str(Path(__file__).parent / "programs" / "child_state.py"), "--i=0"],
            env={**os.environ, "SWEEPQ_TEST_OUT": str(tmp_path)},
            cwd=str(tmp_path),
            own_group=False,
        )
        assert proc.stdout is not None
        proc.stdout.read()
        assert proc.wait() == 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    return dict(json.loads((tmp_path / "child-0.json").read_text()))


def test_a_program_starts_armed_and_killable_through_setpriv_and_through_the_fallback(tmp_path: Path) -> None:
    import signal

    from sweepq import runner

    # A horse's shield (a handler): setpriv where it exists. SIG_IGN in the runner: the
    # preexec_fn fallback, which also resets SIGTERM in the child. Both arm PDEATHSIG.
    for disposition, path in ((runner.shield, "setpriv"), (signal.SIG_IGN, "preexec_fn")):
        state = _started_state(tmp_path, sigterm=disposition)
        assert state["pdeathsig"] == signal.SIGKILL, (path, state)
        assert state["sigterm_default"], (path, state)


def test_a_missing_program_is_reported_as_popen_would_through_setpriv(tmp_path: Path) -> None:
    import os

    import pytest

    from sweepq import runner

    with pytest.raises(FileNotFoundError):
        runner._start(["no-such-program-here"], env=dict(os.environ), cwd=str(tmp_path), own_group=False)
    script = tmp_path / "not_executable.sh"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(PermissionError):
        runner._start([str(script)], env=dict(os.environ), cwd=str(tmp_path), own_group=False)


def test_output_and_exit_are_followed_without_a_pidfd(
    r: redis.Redis, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where Linux offers no pidfd (or Python lacks os.pidfd_open) the runner learns of the
    program's exit from a waiter thread instead: same output, same outcome."""
    import os

    monkeypatch.delattr(os, "pidfd_open", raising=False)
    store = Store(r)
    source = "for i in range(5):\n    print(f'step={i} loss={1 / (i + 1)}')\nprint('last line, no newline', end='')\n"
    sid = _trial(store, tmp_path, source)
    assert _execute(store, sid, redis_url) == "finished"
    trial = store.trial(sid, 0)
    assert trial.history_len == 5 and trial.best == 1 / 5
    assert store.output(sid, 0)[-1] == "last line, no newline"


def test_a_program_that_closes_its_output_is_still_served_and_waited_for(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """The runner serves the trial's channel until the program exits, not until its output ends:
    a program that closed stdout early still reports through the SDK and its exit is seen."""
    store = Store(r)
    source = (
        "import os, time\nimport sweepq\nos.close(1)\nos.close(2)\ntime.sleep(0.3)\n"
        "run = sweepq.init()\nsweepq.log({'loss': 0.125})\n"
    )
    sid = _trial(store, tmp_path, source)
    assert _execute(store, sid, redis_url) == "finished"
    trial = store.trial(sid, 0)
    assert trial.uses_sdk and trial.best == 0.125


def test_wandb_default_env_prefix_is_looked_up_as_env_would(tmp_path: Path) -> None:
    """`${env} ${interpreter}` renders `/usr/bin/env python`: the runner execs what env would
    have run, found in the program's PATH; anything env does beyond a lookup is left to env."""
    import os

    from sweepq import runner

    tool = tmp_path / "bin" / "mytool"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    env = {"PATH": f"{tool.parent}{os.pathsep}/usr/bin"}
    assert runner._past_env(["/usr/bin/env", "mytool", "a", "--b=1"], env) == [str(tool), "a", "--b=1"]
    for argv in (
        ["/usr/bin/env", "-i", "mytool"],  # an option of env's own
        ["/usr/bin/env", "FOO=1", "mytool"],  # an assignment
        ["/usr/bin/env", "not-on-this-path"],  # env reports it, as before
        ["/usr/bin/env"],
        ["mytool", "x"],
    ):
        assert runner._past_env(argv, env) == argv


def test_the_attempt_directory_is_on_tmpfs_and_removed(r: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    """Creating and removing the attempt's directory, its files and the channel's socket costs
    ~2 ms a trial on a disk file system: it goes to /dev/shm where there is one (and no TMPDIR)."""
    import os

    from sweepq import runner

    runner._attempt_root.cache_clear()
    store = Store(r)
    where = tmp_path / "where.txt"
    source = f"import os\nopen({str(where)!r}, 'w').write(os.environ['SWEEPQ_CONFIG_FILE'])\nprint('loss=1')\n"
    sid = _trial(store, tmp_path, source)
    assert _execute(store, sid, redis_url) == "finished"
    params = Path(where.read_text())
    expected = runner._attempt_root()
    if os.environ.get("TMPDIR") or not os.access("/dev/shm", os.W_OK):
        assert expected is None
    else:
        assert expected == "/dev/shm" and params.parent.parent == Path("/dev/shm")
    assert params.name == "params.json" and not params.parent.exists()
