"""End-to-end stopping: hyperband prunes through the real pruner, and people stop, cancel, kill
and rerun trials through the real CLI, with real `rq worker` processes and real programs."""

from __future__ import annotations

import json
import re
import time

import pytest
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from sweepq.stopping import Rule
from sweepq.store import Store
from tests.helpers import (
    alive,
    base_env,
    cli,
    program,
    trials_json,
    wait_for,
)

pytestmark = pytest.mark.timeout(120)

HYPERBAND = {"type": "hyperband", "max_iter": 27, "s": 2, "eta": 3}


def test_hyperband_prunes_the_losers_and_lets_the_winners_finish(r, workers, plans, redis_url):
    # Bands 3 and 9; every history has 8 values, so the decision is at band 3. The two winners
    # share one curve (ties survive, so neither can ever stop the other); the losers are slower
    # and clearly worse: with all four at band 3 the threshold is the winners' value.
    assert Rule.from_config(HYPERBAND).bands == (3, 9)
    workers.start(4)
    plan = plans.start(
        {
            "program": program("curve.py"),
            "method": "grid",
            "metric": {"name": "loss", "goal": "minimize"},
            "early_terminate": HYPERBAND,
            "parameters": {
                "run": {
                    "values": [
                        {"slope": 1.0, "delay": 0.15, "tag": "w1"},
                        {"slope": 1.0, "delay": 0.15, "tag": "w2"},
                        {"slope": 0.1, "delay": 0.4, "tag": "l1"},
                        {"slope": 0.2, "delay": 0.4, "tag": "l2"},
                    ]
                },
                "steps": {"value": 8},
            },
            "command": ["${env}", "${interpreter}", "${program}", "${args_json}"],
        }
    )
    sid = plan.sweep_id()
    assert plan.wait(90) == 0, plan.stderr()
    rows = {t["params"]["run"]["tag"]: t for t in trials_json(redis_url, sid)}
    assert set(rows) == {"w1", "w2", "l1", "l2"}
    for tag in ("w1", "w2"):
        assert rows[tag]["state"] == "finished", rows[tag]
        assert rows[tag]["history_len"] == 8
        assert rows[tag]["best"] == pytest.approx(2.0)
    for tag in ("l1", "l2"):
        t = rows[tag]
        assert t["state"] == "pruned", t
        assert 3 <= t["history_len"] < 8, t
        # "hyperband band 3: <its loss at t=3> > threshold <T> (strict)": T is the winners' 7
        # once all four reached band 3, or 9.4 (l2's) if l1 was judged before both winners were.
        m = re.fullmatch(r"hyperband band 3: (\S+) > threshold (\S+) \(strict\)", t["reason"])
        assert m, t["reason"]
        slope = t["params"]["run"]["slope"]
        assert float(m.group(1)) == pytest.approx(10 - 3 * slope)
        assert float(m.group(2)) in (pytest.approx(7.0), pytest.approx(9.4))
    sweep = Store(r).sweep(sid)
    assert sweep.state == "finished"
    assert (sweep.counts["finished"], sweep.counts["pruned"]) == (2, 2)


def test_sdk_sees_should_stop_then_stopped_from_log_after_a_prune(r, workers, plans, redis_url, out_dir):
    # One band (9): the winner logs 10 values fast and ends; the loser keeps logging until the
    # pruner stops it at band 9. It catches SIGTERM, reads run.should_stop, logs once more.
    workers.start(2, env=base_env(SWEEPQ_TEST_OUT=str(out_dir)))
    plan = plans.start(
        {
            "program": program("sdk_stop.py"),
            "method": "grid",
            "metric": {"name": "loss", "goal": "minimize"},
            "early_terminate": {"type": "hyperband", "max_iter": 27, "s": 1},
            "parameters": {
                "run": {
                    "values": [
                        {"slope": 1.0, "steps": 10, "delay": 0.05, "tag": "winner"},
                        {"slope": 0.1, "steps": 200, "delay": 0.25, "tag": "loser"},
                    ]
                }
            },
        },
        grace=5,
    )
    sid = plan.sweep_id()
    assert plan.wait(100) == 0, plan.stderr()
    rows = {t["params"]["run"]["tag"]: t for t in trials_json(redis_url, sid)}
    loser = rows["loser"]
    assert loser["state"] == "pruned", loser
    assert "band 9" in loser["reason"], loser["reason"]
    seen = json.loads((out_dir / f"stop-{loser['number']}.json").read_text())
    assert seen["should_stop_at_start"] is False
    assert seen.get("sigterm") is True, seen
    assert seen.get("should_stop") is True, seen
    assert "stopped" in seen and "pruned" in seen["stopped"], seen
    assert "completed" not in seen
    winner = rows["winner"]
    assert winner["state"] == "finished", winner
    seen = json.loads((out_dir / f"stop-{winner['number']}.json").read_text())
    assert seen.get("completed") is True and "stopped" not in seen and not seen["sigterm"], seen


def test_kill_takes_down_a_sigterm_ignoring_program_and_its_children_after_the_grace(
    r, workers, plans, redis_url, out_dir
):
    grace = 1.5
    workers.start(1, env=base_env(SWEEPQ_TEST_OUT=str(out_dir)))
    plan = plans.start(
        {
            "program": program("stubborn.py"),
            "method": "grid",
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"p": {"values": [1]}},
        },
        grace=grace,
    )
    sid = plan.sweep_id()
    pids_file = out_dir / "pids-0.json"
    wait_for(pids_file.exists, timeout=30, what="the stubborn program's pids")
    pids = json.loads(pids_file.read_text())
    assert len(pids) == 3 and all(alive(p) for p in pids)

    t0 = time.monotonic()
    out = cli("kill", sid, "0", "--redis", redis_url)
    assert out.returncode == 0, out.stderr
    assert "signalled" in out.stderr
    # SIGTERM is ignored: the tree lives through most of the grace period...
    time.sleep(grace * 0.6)
    assert all(alive(p) for p in pids), "a SIGTERM-ignoring program must live until SIGKILL"
    # ...and is entirely gone soon after it.
    wait_for(lambda: not any(alive(p) for p in pids), timeout=grace + 8, what=f"pids {pids} to be gone")
    gone_after = time.monotonic() - t0
    assert gone_after >= grace * 0.9, gone_after

    assert plan.wait(30) == 0, plan.stderr()
    (row,) = trials_json(redis_url, sid)
    assert row["state"] == "killed", row
    assert row["reason"] == "killed by user"
    assert Store(r).sweep(sid).state == "finished"


def _sleepers(n_values: int, sleep: float) -> dict:
    return {
        "program": program("sleeper.py"),
        "method": "grid",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"values": list(range(1, n_values + 1))}, "sleep": {"value": sleep}},
    }


def _wait_two_running_two_queued(r, sid: str) -> tuple[list[int], list[int]]:
    store = Store(r)

    def ready():
        running = sorted(store.running_numbers(sid))
        queued = store.queued_numbers(sid)
        return (running, queued) if len(running) == 2 and len(queued) == 2 else None

    return wait_for(ready, timeout=40, what="2 running and 2 queued trials")


def test_stop_cancels_queued_trials_and_their_rq_jobs_while_running_ones_finish(r, workers, plans, redis_url, out_dir):
    workers.start(2, env=base_env(SWEEPQ_TEST_OUT=str(out_dir)))
    plan = plans.start(_sleepers(8, 2.5))
    sid = plan.sweep_id()
    running, queued = _wait_two_running_two_queued(r, sid)
    store = Store(r)
    queued_jobs = [store.trial(sid, n).job_id for n in queued]
    # The planner creates a trial, then enqueues its job: wait for the second step too.
    wait_for(lambda: all(r.exists(f"rq:job:{j}") for j in queued_jobs), timeout=10, what="the queued trials' jobs")
    assert all(Job.fetch(j, connection=r).get_status() == JobStatus.QUEUED for j in queued_jobs)

    out = cli("stop", sid, "--redis", redis_url)
    assert out.returncode == 0, out.stderr
    assert "2 queued trials cancelled" in out.stderr, out.stderr
    assert store.sweep(sid).state == "stopped"
    for n, j in zip(queued, queued_jobs, strict=True):
        assert store.trial(sid, n).state == "cancelled"
        assert Job.fetch(j, connection=r).get_status() == JobStatus.CANCELED

    assert plan.wait(40) == 0, plan.stderr()
    rows = {t["number"]: t for t in trials_json(redis_url, sid)}
    assert len(rows) == 4  # nothing was created after the stop
    for n in running:
        assert rows[n]["state"] == "finished", rows[n]
        assert rows[n]["history_len"] == 2  # ran to its end
    for n in queued:
        assert rows[n]["state"] == "cancelled"
        assert not (out_dir / f"started-{n}").exists()  # never started
    sweep = store.sweep(sid)
    assert sweep.state == "stopped" and sweep.active == 0


def test_cancel_kills_running_trials_and_cancels_queued_ones(r, workers, plans, redis_url, out_dir):
    workers.start(2, env=base_env(SWEEPQ_TEST_OUT=str(out_dir)))
    plan = plans.start(_sleepers(8, 60), grace=1)
    sid = plan.sweep_id()
    running, queued = _wait_two_running_two_queued(r, sid)
    store = Store(r)
    wait_for(
        lambda: all((out_dir / f"started-{n}").exists() for n in running),
        timeout=20,
        what="both running programs to start",
    )

    t0 = time.monotonic()
    out = cli("cancel", sid, "--redis", redis_url)
    assert out.returncode == 0, out.stderr
    assert "2 queued cancelled, 2 killed" in out.stderr, out.stderr
    assert plan.wait(30) == 0, plan.stderr()
    assert time.monotonic() - t0 < 20  # the 60 s sleeps were cut short

    rows = {t["number"]: t for t in trials_json(redis_url, sid)}
    assert len(rows) == 4
    for n in running:
        assert rows[n]["state"] == "killed", rows[n]
        assert rows[n]["reason"] == "sweep cancelled"
        assert rows[n]["history_len"] == 1
    for n in queued:
        assert rows[n]["state"] == "cancelled"
        job = Job.fetch(store.trial(sid, n).job_id, connection=r)
        assert job.get_status() == JobStatus.CANCELED
    assert store.sweep(sid).state == "cancelled"


def test_rerun_failed_reruns_them_with_the_same_params(r, workers, plans, redis_url, out_dir):
    workers.start(2, env=base_env(SWEEPQ_TEST_OUT=str(out_dir)))
    plan = plans.start(
        {
            "program": program("flaky.py"),
            "method": "grid",
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"x": {"values": [1, 2, 3, 4]}},
        }
    )
    sid = plan.sweep_id()
    assert plan.wait(60) == 0, plan.stderr()
    first = {t["number"]: t for t in trials_json(redis_url, sid)}
    failed = sorted(n for n, t in first.items() if t["state"] == "failed")
    assert [first[n]["params"]["x"] for n in failed] == [2, 4]
    assert all("fails until allowed" in first[n]["reason"] for n in failed)

    (out_dir / "allow").touch()
    out = cli("rerun", sid, "--failed", "--redis", redis_url)
    assert out.returncode == 0, out.stderr
    assert f"queued again: {' '.join(map(str, failed))}" in out.stderr, out.stderr
    # A planner on the resumed sweep sees the reruns to their end, then ends the sweep.
    again = cli("plan", "--resume", sid, "--redis", redis_url, "--workers", "0", timeout=60)
    assert again.returncode == 0, again.stderr

    rows = {t["number"]: t for t in trials_json(redis_url, sid)}
    assert {t["state"] for t in rows.values()} == {"finished"}, rows
    for n, t in rows.items():
        assert t["params"] == first[n]["params"]
        assert t["attempts"] == (2 if n in failed else 1)
        assert t["best"] == t["params"]["x"]
    runs = [json.loads(line) for line in (out_dir / "runs.jsonl").read_text().splitlines()]
    for n in failed:
        attempts = [run for run in runs if run["trial"] == n]
        assert [a["attempt"] for a in attempts] == [1, 2]
        assert attempts[0]["argv"] == attempts[1]["argv"] == [f"--x={first[n]['params']['x']}"]
    assert len(runs) == 6
    assert Store(r).sweep(sid).state == "finished"
    for n in failed:  # the rerun's job ran to success: RQ deleted it (trial jobs keep no result)
        with pytest.raises(NoSuchJobError):
            Job.fetch(f"sweepq-{sid}-{n}-2", connection=r)


def test_kill_of_a_function_mode_trial_that_never_logs_ends_it_after_the_grace(r, workers, plans, redis_url, out_dir):
    # The function cannot see Stopped (it never calls log() again): past the grace period the
    # job process exits, the trial ends killed, and the same worker takes the next trial.
    (worker,) = workers.start(1, env=base_env(SWEEPQ_TEST_OUT=str(out_dir)))
    plan = plans.start(
        {
            "program": "tests.programs.fn_train:hang",
            "method": "grid",
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"mode": {"values": ["hang", "quick"]}},
        },
        grace=1.5,
    )
    sid = plan.sweep_id()
    pid_file = out_dir / "hang-0.pid"
    wait_for(pid_file.exists, timeout=30, what="the hanging function to start")
    horse = int(pid_file.read_text())
    assert horse != worker.pid and alive(horse)

    out = cli("kill", sid, "0", "--redis", redis_url)
    assert out.returncode == 0, out.stderr
    wait_for(lambda: not alive(horse), timeout=15, what="the job process to exit")
    assert plan.wait(40) == 0, plan.stderr()
    rows = trials_json(redis_url, sid)
    assert [t["state"] for t in rows] == ["killed", "finished"], rows
    assert rows[0]["reason"] == "killed by user"
    assert worker.poll() is None  # the worker lives on
    assert rows[1]["worker"] == rows[0]["worker"]
