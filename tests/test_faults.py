"""Attempts fenced everywhere (issue 11, item 2), with real rq workers, real programs and a real
network partition (a loopback proxy the test blackholes, tests/netfault.py).

- a worker partitioned from Redis stops its own program before the planner can start the next
  attempt, and its runner's late close never stops the live attempt (the audit's "4 complete
  runs, then crashed");
- the time limit holds while Redis is unreachable;
- a worker kill -9 during the SIGTERM grace of a prune ends the trial pruned, never retried;
- `stop`/`cancel` always end: no trial is left queued in a closed sweep, the planner exits.
"""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from sweepq import control
from sweepq.model import StopKind, SweepState
from sweepq.planner import Planner
from sweepq.store import Store
from tests.helpers import PlannerThread, Plans, Workers, alive, base_env, cli, program_sweep, wait_for
from tests.netfault import Proxy

# Writes a line "<time> <pid>" to alive-<attempt> every 0.1 s while it runs, prints the metric.
TICKER = """
import os, sys, time
steps = int(os.environ.get("STEPS_%s" % os.environ["SWEEPQ_ATTEMPT"], os.environ.get("STEPS", "50")))
here = os.path.dirname(os.path.abspath(__file__))
path = os.path.join(here, "alive-" + os.environ["SWEEPQ_ATTEMPT"])
for i in range(steps):
    with open(path, "a") as f:
        f.write("%f %d\\n" % (time.time(), os.getpid()))
    print("loss=%f" % (1.0 / (i + 1)), flush=True)
    time.sleep(0.1)
"""


_sweep = program_sweep


def _ticks(path: Path) -> list[tuple[float, int]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        t, pid = line.split()
        out.append((float(t), int(pid)))
    return out


@pytest.fixture()
def proxy(redis_url: str) -> Iterator[Proxy]:
    p = Proxy(urlsplit(redis_url).port or 6379)
    try:
        yield p
    finally:
        p.close()


def _via(proxy: Proxy, redis_url: str) -> str:
    return proxy.url + (urlsplit(redis_url).path or "/0")


def test_partitioned_worker_stops_its_program_and_never_stops_the_live_attempt(
    r: redis.Redis, redis_url: str, proxy: Proxy, tmp_path: Path
) -> None:
    """Worker A (behind the proxy) runs attempt 1; the proxy is cut. A must stop its program
    itself before the planner's heartbeat timeout (so attempts 1 and 2 never overlap); attempt 2
    runs on worker B; the partition heals while attempt 2 runs and A's runner closes its
    attempt, which must not touch attempt 2: the trial finishes as attempt 2."""
    store = Store(r)
    sid = _sweep(store, tmp_path, TICKER, heartbeat_timeout=3.0, grace=0.5)
    logs = tmp_path / "logs"
    logs.mkdir()
    box_a, box_b = Workers(_via(proxy, redis_url), logs), Workers(redis_url, logs)
    box_b._n = 100  # distinct worker names (rq refuses a second worker of the same name)
    env = base_env(STEPS_1="600", STEPS_2="60")
    planner = PlannerThread(store, sid)
    try:
        box_a.start(1, env=env)
        wait_for(lambda: len(_ticks(tmp_path / "alive-1")) >= 3, timeout=60, what="attempt 1 to run on worker A")
        proxy.partition()
        cut = time.time()
        pid1 = _ticks(tmp_path / "alive-1")[-1][1]
        wait_for(lambda: not alive(pid1), timeout=15, what="worker A to stop its partitioned program")
        stopped_after = time.time() - cut
        box_b.start(1, env=env)
        wait_for(lambda: len(_ticks(tmp_path / "alive-2")) >= 5, timeout=60, what="attempt 2 to run on worker B")
        proxy.heal()  # A's runner now closes attempt 1 while attempt 2 runs
        final = planner.join(90)
    finally:
        planner.close()
        proxy.heal()
        box_a.stop()
        box_b.stop()
    one, two = _ticks(tmp_path / "alive-1"), _ticks(tmp_path / "alive-2")
    assert stopped_after < 3.0 + 0.5, f"program ran {stopped_after:.1f}s into the partition"
    assert one[-1][0] < two[0][0], "attempts 1 and 2 ran at the same time"
    trial = store.trial(sid, 0)
    assert final.state == "finished"
    assert (trial.state, trial.attempt) == ("finished", 2), trial.reason
    assert len(two) == 60, "attempt 2 was cut short"


def test_time_limit_holds_while_redis_is_unreachable(
    r: redis.Redis, redis_url: str, proxy: Proxy, tmp_path: Path
) -> None:
    store = Store(r)
    sid = _sweep(store, tmp_path, TICKER, time_limit=2.0, grace=0.5, heartbeat_timeout=60.0)
    logs = tmp_path / "logs"
    logs.mkdir()
    box = Workers(_via(proxy, redis_url), logs)
    planner = PlannerThread(store, sid)
    try:
        box.start(1, env=base_env(STEPS="100000"))
        wait_for(lambda: _ticks(tmp_path / "alive-1"), timeout=60, what="the program to start")
        start, pid = _ticks(tmp_path / "alive-1")[0]
        proxy.partition()
        wait_for(lambda: not alive(pid), timeout=20, what="the time limit to stop the partitioned program")
        ran = _ticks(tmp_path / "alive-1")[-1][0] - start
        proxy.heal()
        planner.join(90)
    finally:
        planner.close()
        proxy.heal()
        box.stop()
    assert ran < 2.0 + 0.5 + 1.5, f"the program ran {ran:.1f}s with a 2s limit"
    trial = store.trial(sid, 0)
    assert trial.state == "failed" and "time limit" in (trial.reason or ""), trial.reason


SIGTERM_IGNORER = """
import os, signal, time
here = os.path.dirname(os.path.abspath(__file__))
attempt = os.environ["SWEEPQ_ATTEMPT"]
def on_term(*_):
    open(os.path.join(here, "term-" + attempt), "w").close()
signal.signal(signal.SIGTERM, on_term)
open(os.path.join(here, "pid-" + attempt), "w").write(str(os.getpid()))
print("loss=1.0", flush=True)
while True:
    time.sleep(0.1)
"""


def test_worker_kill9_during_the_grace_of_a_prune_ends_pruned_not_retried(
    r: redis.Redis, workers: Workers, tmp_path: Path
) -> None:
    store = Store(r)
    sid = _sweep(store, tmp_path, SIGTERM_IGNORER, heartbeat_timeout=2.0, grace=30.0)
    planner = PlannerThread(store, sid)
    try:
        (worker,) = workers.start(1)
        pid = int(wait_for(lambda: (tmp_path / "pid-1").exists() and (tmp_path / "pid-1").read_text(), timeout=60))
        assert store.request_stop(sid, 0, kind=StopKind.PRUNE, reason="pruned by hyperband") == "signalled"
        wait_for((tmp_path / "term-1").exists, timeout=10, what="the SIGTERM of the prune")
        os.kill(worker.pid, signal.SIGKILL)  # mid-grace: the program ignores SIGTERM
        wait_for(lambda: not alive(pid), timeout=10, what="the program to die with its worker")
        workers.start(1)  # a live worker that would run a retry
        final = planner.join(60)
    finally:
        planner.close()
    trial = store.trial(sid, 0)
    assert (trial.state, trial.attempt) == ("pruned", 1), trial.reason
    assert "lost" in (trial.reason or "")
    assert not (tmp_path / "pid-2").exists(), "the pruned trial was retried"
    assert final.state == "finished"


def test_stop_then_worker_death_leaves_nothing_queued_and_the_planner_exits(
    r: redis.Redis, workers: Workers, tmp_path: Path
) -> None:
    """`sweepq stop` lets running trials finish; when the worker of one dies instead, the reaper
    must not queue it again into the stopped sweep (nothing would ever run it)."""
    store = Store(r)
    sid = _sweep(store, tmp_path, TICKER, heartbeat_timeout=2.0, grace=0.5)
    planner = PlannerThread(store, sid)
    try:
        (worker,) = workers.start(1, env=base_env(STEPS="100000"))
        wait_for(lambda: _ticks(tmp_path / "alive-1"), timeout=60, what="the trial to start")
        control.stop(store, sid)
        os.kill(worker.pid, signal.SIGKILL)
        final = planner.join(30)
    finally:
        planner.close()
    trial = store.trial(sid, 0)
    assert final.state == "stopped"
    assert trial.state == "cancelled" and "lost its worker" in (trial.reason or ""), trial.reason
    assert store.queued_numbers(sid) == [] and store.running_numbers(sid) == {}


def test_a_requeue_racing_a_cancel_ends_cancelled(r: redis.Redis, tmp_path: Path) -> None:
    """The window inside `cancel`: the sweep is already cancelled, the running trial not yet
    told; its worker shuts down (warm) and asks for a requeue. It must end, not wait forever."""
    store = Store(r)
    sid = _sweep(store, tmp_path, "print(1)")
    assert store.create_trial(sid, 0, params={"x": 0.5}, encoded={"x": 0.5}) == "ok"
    assert store.claim(sid, 0, attempt=1, worker="w", host="h").status == "ok"
    assert store.set_sweep_state(sid, SweepState.CANCELLED, allowed=[SweepState.RUNNING]) == "ok"
    done = store.finish(sid, 0, attempt=1, outcome="requeue", reason="worker shut down")
    assert done.status == "cancelled" and done.trial is not None and done.trial.attempt == 1
    assert store.queued_numbers(sid) == []
    assert store.rerun(sid, 0).status == "closed"  # a rerun racing the cancel queues nothing either


def test_the_planner_ends_a_queued_trial_left_in_a_cancelled_sweep(r: redis.Redis, tmp_path: Path) -> None:
    """Whatever path left a trial queued in a closed sweep (an older runner, a race), the
    planner cancels it and exits instead of waiting for it forever."""
    store = Store(r)
    sid = _sweep(store, tmp_path, "print(1)", run_cap=2)
    planner = Planner(store, sid)
    planner.step()  # creates and enqueues trial 0 (and 1)
    assert store.queued_numbers(sid)
    assert store.set_sweep_state(sid, SweepState.CANCELLED, allowed=[SweepState.RUNNING]) == "ok"
    deadline = time.monotonic() + 10
    while not planner.step().done:
        assert time.monotonic() < deadline, "the planner never ended the cancelled sweep"
        time.sleep(0.1)
    assert store.queued_numbers(sid) == []
    assert {t.state for t in store.trials(sid)} == {"cancelled"}


def test_cancel_with_warm_shutdowns_racing_it_always_ends(
    redis_url: str, r: redis.Redis, workers: Workers, plans: Plans, tmp_path: Path
) -> None:
    """`sweepq cancel` while workers shut down (their trials ask for a requeue): the planner
    exits and no trial is left queued or running."""
    (tmp_path / "prog.py").write_text(textwrap.dedent(TICKER))
    procs = workers.start(3, env=base_env(STEPS="100000"))
    plan = plans.start(
        {
            "program": str(tmp_path / "prog.py"),
            "method": "random",
            "run_cap": 12,
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"x": {"min": 0.0, "max": 1.0}},
        },
        grace=1.0,
        args=["--heartbeat-timeout", "3"],
    )
    sid = plan.sweep_id()
    wait_for(lambda: store_running(r, sid) >= 3, timeout=60, what="three running trials")
    for p in procs[:2]:
        p.send_signal(signal.SIGTERM)  # warm shutdown: requeue, racing the cancel below
    out = cli("cancel", sid, "--redis", redis_url)
    assert out.returncode == 0, out.stderr
    assert plan.wait(60) == 0, plan.stderr()
    store = Store(r)
    states = {t.number: t.state for t in store.trials(sid)}
    assert store.sweep(sid).state == "cancelled"
    assert not [n for n, s in states.items() if s in ("queued", "running")], json.dumps(states)


def store_running(r: redis.Redis, sid: str) -> int:
    return Store(r).sweep(sid).counts["running"]
