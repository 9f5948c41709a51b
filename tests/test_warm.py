"""The warm worker (`sweepq.warm.WarmWorker`): one work horse per worker, reused across trials,
with the isolation of a horse per trial kept. Real `rq worker` processes, real `sweepq plan`,
real programs; the processes are checked through their pids."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import psutil
import pytest

from sweepq.model import StopKind
from sweepq.store import Store
from tests.helpers import ROOT, alive, base_env, program, trials_json, wait_for

pytestmark = pytest.mark.timeout(120)

WARM = ("-w", "sweepq.warm.WarmWorker")


def _fn_sweep(function: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "program": f"tests.programs.warm_fn:{function}",
        "method": "grid",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": parameters,
    }


def _records(out_dir: Path, n: int) -> list[dict[str, Any]]:
    return [json.loads((out_dir / f"fn-{k}.json").read_text()) for k in range(n)]


def _horse_of(worker_pid: int) -> list[int]:
    return [c.pid for c in psutil.Process(worker_pid).children() if c.status() != psutil.STATUS_ZOMBIE]


def test_one_horse_runs_every_function_trial_and_keeps_module_state(r, workers, plans, redis_url, out_dir):
    (worker,) = workers.start(1, env=base_env(SWEEPQ_TEST_OUT=str(out_dir)), extra=WARM)
    plan = plans.start(_fn_sweep("count", {"i": {"values": list(range(6))}}), cwd=ROOT)
    sid = plan.sweep_id()
    assert plan.wait(60) == 0, plan.stderr()
    rows = trials_json(redis_url, sid)
    assert [t["state"] for t in rows] == ["finished"] * 6, [(t["state"], t["reason"]) for t in rows]
    seen = _records(out_dir, 6)
    assert len({s["pid"] for s in seen}) == 1  # one process for all six trials
    assert seen[0]["pid"] != worker.pid
    assert [s["seen"] for s in seen] == [1, 2, 3, 4, 5, 6]  # the module was imported once
    assert _horse_of(worker.pid) == [seen[0]["pid"]]  # and it is still there, waiting


def test_a_kill_ends_the_trial_not_the_horse_and_train_config_gets_the_config(r, workers, plans, redis_url, out_dir):
    (worker,) = workers.start(1, env=base_env(SWEEPQ_TEST_OUT=str(out_dir)), extra=WARM)
    plan = plans.start(_fn_sweep("looper", {"mode": {"values": ["loop", "quick"]}}), cwd=ROOT, grace=5)
    sid = plan.sweep_id()
    wait_for((out_dir / "fn-0.json").exists, timeout=30, what="the looping trial to start")
    assert Store(r).request_stop(sid, 0, kind=StopKind.KILL, reason="test") == "signalled"
    assert plan.wait(40) == 0, plan.stderr()
    rows = trials_json(redis_url, sid)
    assert [t["state"] for t in rows] == ["killed", "finished"], rows
    first, second = _records(out_dir, 2)
    assert (first["mode"], second["mode"]) == ("loop", "quick")  # train(config) got its config
    assert first["pid"] == second["pid"] and second["seen"] == 2  # the same horse went on
    assert worker.poll() is None


def test_a_trial_that_ignores_its_stop_past_the_grace_gets_a_fresh_horse(r, workers, plans, redis_url, out_dir):
    (worker,) = workers.start(1, env=base_env(SWEEPQ_TEST_OUT=str(out_dir)), extra=WARM)
    plan = plans.start(_fn_sweep("stubborn", {"mode": {"values": ["hang", "quick"]}}), cwd=ROOT, grace=1)
    sid = plan.sweep_id()
    wait_for((out_dir / "fn-0.json").exists, timeout=30, what="the stubborn trial to start")
    horse = json.loads((out_dir / "fn-0.json").read_text())["pid"]
    assert Store(r).request_stop(sid, 0, kind=StopKind.KILL, reason="test") == "signalled"
    wait_for(lambda: not alive(horse), timeout=15, what="the hung horse to be replaced")
    assert plan.wait(40) == 0, plan.stderr()
    rows = trials_json(redis_url, sid)
    assert [t["state"] for t in rows] == ["killed", "finished"], rows
    second = _records(out_dir, 2)[1]
    assert second["pid"] != horse and second["seen"] == 1  # a fresh horse, fresh module state
    assert worker.poll() is None and rows[1]["worker"] == rows[0]["worker"]


def test_the_horse_is_recycled_after_max_trials(r, workers, plans, redis_url, out_dir):
    env = base_env(SWEEPQ_TEST_OUT=str(out_dir), SWEEPQ_WARM_MAX_TRIALS="2")
    workers.start(1, env=env, extra=WARM)
    plan = plans.start(_fn_sweep("count", {"i": {"values": list(range(5))}}), cwd=ROOT)
    sid = plan.sweep_id()
    assert plan.wait(60) == 0, plan.stderr()
    assert {t["state"] for t in trials_json(redis_url, sid)} == {"finished"}
    seen = _records(out_dir, 5)
    pids = [s["pid"] for s in seen]
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]
    assert [s["seen"] for s in seen] == [1, 2, 1, 2, 1]


@pytest.mark.parametrize("worker_class", ["sweepq.warm.WarmWorker", "sweepq.worker.Worker"])
def test_a_setsid_daemon_that_holds_stdout_ends_with_its_trial(r, workers, plans, redis_url, out_dir, worker_class):
    workers.start(1, env=base_env(SWEEPQ_TEST_OUT=str(out_dir)), extra=("-w", worker_class))
    plan = plans.start(
        {
            "program": program("daemonize.py"),
            "method": "grid",
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"k": {"values": [0, 1]}},
        }
    )
    sid = plan.sweep_id()
    assert plan.wait(60) == 0, plan.stderr()  # the daemon holding the output pipe did not hang it
    assert [t["state"] for t in trials_json(redis_url, sid)] == ["finished", "finished"]
    for k in range(2):
        pids = json.loads((out_dir / f"daemon-{k}.json").read_text())
        assert os.getpgid(pids["daemon"]) != pids["parent"] if alive(pids["daemon"]) else True
        wait_for(lambda p=pids: not alive(p["daemon"]), timeout=10, what=f"daemon {pids['daemon']} to be killed")


def test_kill_9_of_the_warm_worker_kills_its_horse_programs_and_daemons(r, workers, plans, redis_url, out_dir):
    (worker,) = workers.start(1, env=base_env(SWEEPQ_TEST_OUT=str(out_dir)), extra=WARM)
    plan = plans.start(
        {
            "program": program("daemonize.py"),
            "method": "grid",
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"stay": {"value": 1}},
        }
    )
    plan.sweep_id()
    path = out_dir / "daemon-0.json"
    wait_for(path.exists, timeout=30, what="the program to start its daemon")
    pids = json.loads(path.read_text())
    horse = pids["parent"]
    assert horse != worker.pid and all(alive(p) for p in pids.values())
    os.kill(worker.pid, signal.SIGKILL)
    for name, pid in (("horse", horse), ("program", pids["program"]), ("daemon", pids["daemon"])):
        wait_for(lambda p=pid: not alive(p), timeout=10, what=f"the {name} ({pid}) to die with its worker")


def _child_state_sweep(values: list[int], hold: float) -> dict[str, Any]:
    return {
        "program": program("child_state.py"),
        "method": "grid",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"i": {"values": values}, "hold": {"value": hold}},
    }


def test_every_program_a_warm_horse_starts_is_killable_and_armed_with_a_parent_death_signal(
    r, workers, plans, redis_url, out_dir
):
    # The horse shields itself from its programs' group kill with a handler, not SIG_IGN (which
    # an exec keeps): every program, not only the first, starts with SIGTERM's default action,
    # and with SIGKILL as its parent-death signal (set by setpriv, or a preexec_fn without it).
    workers.start(1, env=base_env(SWEEPQ_TEST_OUT=str(out_dir)), extra=WARM)
    plan = plans.start(_child_state_sweep([0, 1, 2], 0.0))
    plan.sweep_id()
    assert plan.wait(60) == 0, plan.stderr()
    states = [json.loads((out_dir / f"child-{k}.json").read_text()) for k in range(3)]
    assert [s["pdeathsig"] for s in states] == [signal.SIGKILL] * 3, states
    assert all(s["sigterm_default"] for s in states), states
    assert len({s["parent"] for s in states}) == 1  # one horse started all three


def test_killing_worker_and_horse_together_still_ends_the_program(r, workers, plans, redis_url, out_dir):
    # `pkill -9 -f "rq worker"` kills the worker and its horse at once: nobody is left to kill
    # the program but its own parent-death signal.
    (worker,) = workers.start(1, env=base_env(SWEEPQ_TEST_OUT=str(out_dir)), extra=WARM)
    plans.start(_child_state_sweep([0], 60.0)).sweep_id()
    path = out_dir / "child-0.json"
    wait_for(path.exists, timeout=30, what="the program to start")
    state = json.loads(path.read_text())
    horse = state["parent"]
    assert horse != worker.pid and alive(state["pid"])
    os.kill(horse, signal.SIGKILL)
    os.kill(worker.pid, signal.SIGKILL)
    wait_for(lambda: not alive(state["pid"]), timeout=10, what="the program to die with its horse")
