"""End-to-end runs with real parts only: a real Redis-compatible server, real `rq worker`
processes, the real `sweepq` CLI and real training subprocesses from tests/programs/."""

from __future__ import annotations

import itertools
import json
import os
import statistics
from collections import Counter
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry

from sweepq.store import Store
from tests.helpers import (
    ROOT,
    alive,
    base_env,
    cli,
    kill_by_env,
    program,
    trials_json,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.timeout(120)


def _quad_grid() -> dict:
    return {
        "program": program("quad.py"),
        "method": "grid",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {
            "x": {"values": [0, 1, 2]},
            "y": {"values": [-2, 0, 3]},
            "sleep": {"value": 0.3},
        },
    }


def test_grid_runs_every_point_once_across_three_workers(r, workers, plans, redis_url):
    workers.start(3)
    plan = plans.start(_quad_grid())
    sid = plan.sweep_id()
    assert plan.wait(90) == 0, plan.stderr()

    rows = trials_json(redis_url, sid)
    points = [(t["params"]["x"], t["params"]["y"]) for t in rows]
    assert sorted(points) == sorted(itertools.product([0, 1, 2], [-2, 0, 3]))
    assert len(set(points)) == 9
    assert {t["state"] for t in rows} == {"finished"}
    assert all(t["attempts"] == 1 for t in rows)
    for t in rows:
        x, y = t["params"]["x"], t["params"]["y"]
        assert t["best"] == pytest.approx((x - 1) ** 2 + (y + 2) ** 2)
    # More than one of the three workers took trials.
    assert len({t["worker"] for t in rows}) >= 2, [t["worker"] for t in rows]

    store = Store(r)
    sweep = store.sweep(sid)
    assert sweep.state == "finished"
    assert sweep.counts["finished"] == 9 and sweep.created == 9
    # RQ agrees: every trial's job ended well and was deleted (trials keep no RQ result), none
    # failed, and the event stream saw each trial start exactly once.
    assert_ran_once_each(r, store, sid, [t["number"] for t in rows])


def test_random_sweep_with_run_cap_20_on_4_workers_ends_with_exactly_20(r, workers, plans, redis_url):
    workers.start(4)
    plan = plans.start(
        {
            "program": program("quad.py"),
            "method": "random",
            "run_cap": 20,
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"x": {"min": -3.0, "max": 3.0}, "y": {"min": -3.0, "max": 3.0}},
        },
        args=["--seed", "7"],
    )
    sid = plan.sweep_id()
    assert plan.wait(90) == 0, plan.stderr()

    rows = trials_json(redis_url, sid)
    assert len(rows) == 20
    assert [t["number"] for t in rows] == list(range(20))
    assert {t["state"] for t in rows} == {"finished"}
    store = Store(r)
    sweep = store.sweep(sid)
    assert sweep.state == "finished"
    assert sweep.created == 20 and sweep.counts["finished"] == 20
    assert sum(sweep.counts.values()) == 20
    assert_ran_once_each(r, store, sid, list(range(20)))
    assert Queue("sweepq", connection=r).count == 0


def assert_ran_once_each(r, store: Store, sid: str, numbers: list[int]) -> None:
    """Each trial's job is gone from RQ (a finished trial's job is deleted, result_ttl=0), no job
    of the sweep sits in RQ's failed or finished registries, and each trial entered `running`
    exactly once (from the sweep's event stream)."""
    queue = Queue("sweepq", connection=r)
    for n in numbers:
        with pytest.raises(NoSuchJobError):
            Job.fetch(store.trial(sid, n).job_id, connection=r)
    for registry in (FinishedJobRegistry(queue=queue), FailedJobRegistry(queue=queue)):
        assert not [j for j in registry.get_job_ids() if j.startswith(f"sweepq-{sid}-")]
    starts = Counter(int(f["trial"]) for _, f in store.events_since(sid, "0-0") if f.get("state") == "running")
    assert starts == Counter(numbers)


def test_plan_count_with_its_own_local_workers_runs_exactly_that_many(r, plans, redis_url):
    # `--workers 2`: the planner starts (and at the end stops) two real rq workers itself.
    plan = plans.start(
        {
            "program": program("quad.py"),
            "method": "random",
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"x": {"min": -3.0, "max": 3.0}, "y": {"values": [0, 1]}},
        },
        args=["--count", "5"],
        workers=2,
    )
    sid = plan.sweep_id()
    assert plan.wait(90) == 0, plan.stderr()
    rows = trials_json(redis_url, sid)
    assert len(rows) == 5 and {t["state"] for t in rows} == {"finished"}
    assert Store(r).sweep(sid).state == "finished"
    from rq import Worker

    wait_for(lambda: not Worker.all(connection=r), timeout=30, what="the planner's local workers to be gone")


def _sphere(x: float, y: float, z: float, w: float) -> float:
    return (x - 1.2) ** 2 + (y + 2.1) ** 2 + (z - 3.3) ** 2 + (w + 0.4) ** 2


def _sphere_fn() -> None:
    import sweepq

    run = sweepq.init()
    c = run.config
    sweepq.log({"loss": _sphere(c["x"], c["y"], c["z"], c["w"])})


def _best_of(method: str, seed: int, redis_url: str, algorithm: str = "tpe") -> float:
    import sweepq

    cfg = {
        "method": method,
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {k: {"min": -5.0, "max": 5.0} for k in ("x", "y", "z", "w")},
    }
    # TPE explicitly: "auto" means GP where torch is installed, about 0.5 s per suggestion.
    sid = sweepq.sweep(cfg, redis=redis_url, seed=seed, algorithm=algorithm)
    assert sweepq.agent(sid, function=_sphere_fn, count=30, redis=redis_url) == 30
    store = Store(redis.Redis.from_url(redis_url))
    rows = store.trials(sid)
    assert len(rows) == 30 and {t.state for t in rows} == {"finished"}
    best = min(t.best for t in rows if t.best is not None)
    store.r.close()
    return best


def test_bayes_beats_random_on_a_4d_quadratic_in_the_same_budget(r, redis_url):
    """30 trials each, seeds 1-3: TPE's median best is clearly below random search's."""
    bayes = [_best_of("bayes", seed, redis_url) for seed in (1, 2, 3)]
    rand = [_best_of("random", seed, redis_url) for seed in (1, 2, 3)]
    assert statistics.median(bayes) < 0.6 * statistics.median(rand), (bayes, rand)


def test_function_mode_runs_in_the_worker_from_the_sweep_workdir(r, workers, plans, redis_url, out_dir, tmp_path):
    # The workers' cwd is elsewhere and PYTHONPATH is unset: the module is found through the
    # sweep's workdir (the planner's cwd, the repo root) that the runner puts on sys.path.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = base_env(SWEEPQ_TEST_OUT=str(out_dir))
    env.pop("PYTHONPATH")
    workers.start(2, cwd=elsewhere, env=env)
    plan = plans.start(
        {
            "program": "tests.programs.fn_train:train",
            "method": "grid",
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"x": {"values": [0.0, 1.0]}, "y": {"values": [-2.0, 1.0]}},
        },
        cwd=ROOT,
    )
    sid = plan.sweep_id()
    assert plan.wait(60) == 0, plan.stderr()
    rows = trials_json(redis_url, sid)
    assert len(rows) == 4
    assert {t["state"] for t in rows} == {"finished"}, [(t["state"], t["reason"]) for t in rows]
    for t in rows:
        x, y = t["params"]["x"], t["params"]["y"]
        assert t["best"] == pytest.approx((x - 1) ** 2 + (y + 2) ** 2)
        assert t["history_len"] == 3
        pid, fx, fy = (out_dir / f"fn-{t['number']}.txt").read_text().split()
        assert (float(fx), float(fy)) == (x, y)
        assert int(pid) not in {w.pid for w in workers.procs}  # ran in the job process


def test_metric_target_stops_the_sweep_and_lets_running_trials_finish(r, workers, plans, redis_url):
    workers.start(2)
    plan = plans.start(
        {
            "program": program("sleeper.py"),
            "method": "random",
            "run_cap": 40,
            "metric": {"name": "loss", "goal": "minimize", "target": 0.3},
            "parameters": {"x": {"min": 0.0, "max": 1.0}, "sleep": {"value": 0.6}},
        },
        args=["--seed", "3"],
    )
    sid = plan.sweep_id()
    assert plan.wait(90) == 0, plan.stderr()

    sweep = Store(r).sweep(sid)
    assert sweep.state == "stopped"
    assert "target" in (sweep.state_reason or ""), sweep.state_reason
    rows = trials_json(redis_url, sid)
    assert 0 < len(rows) < 40
    states = {t["state"] for t in rows}
    assert states <= {"finished", "cancelled"}, [(t["state"], t["reason"]) for t in rows]
    assert any(t["state"] == "finished" and t["best"] <= 0.3 for t in rows)
    # Every trial that started ran to its end (both of its log lines), none was killed.
    for t in rows:
        if t["state"] == "finished":
            assert t["history_len"] == 2
    assert sweep.active == 0


QUICKSTART_TRAIN = """\
import sweepq

run = sweepq.init()
lr, layers = run.config["lr"], run.config["layers"]
for epoch in range(3):
    sweepq.log({"epoch": epoch, "val_loss": abs(lr - 0.01) * 10 + 1.0 / (layers + epoch)})
"""

QUICKSTART_YAML = """\
program: train.py
method: random
run_cap: 3
metric:
  name: val_loss
  goal: minimize
parameters:
  lr:
    distribution: log_uniform_values
    min: 0.0001
    max: 0.1
  layers:
    values: [1, 2, 3]
"""


def test_embedded_quickstart_from_an_empty_directory(tmp_path):
    """No --redis, no SWEEPQ_REDIS_URL: `sweepq plan` starts its own server and one worker."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "train.py").write_text(QUICKSTART_TRAIN)
    (proj / "sweep.yaml").write_text(QUICKSTART_YAML)
    home = tmp_path / "home"
    env = base_env(SWEEPQ_HOME=str(home))
    env.pop("PYTHONPATH")
    assert "SWEEPQ_REDIS_URL" not in env
    server_pid = None
    try:
        plan = cli("plan", "sweep.yaml", cwd=proj, env=env, timeout=100)
        assert plan.returncode == 0, plan.stderr
        sid = plan.stdout.splitlines()[0].strip()
        state = json.loads((home / "server.json").read_text())
        server_pid = int((home / "valkey.pid").read_text())
        assert alive(server_pid)
        trials = cli("trials", sid, "--json", cwd=proj, env=env)
        assert trials.returncode == 0, trials.stderr
        rows = json.loads(trials.stdout)
        assert len(rows) == 3
        assert {t["state"] for t in rows} == {"finished"}, [t["reason"] for t in rows]
        assert all(t["history_len"] == 3 for t in rows)
        status = cli("status", sid, cwd=proj, env=env)
        assert status.returncode == 0 and sid in status.stdout + status.stderr
        assert state["port"] > 0
        assert (home / "appendonly.aof").exists() or (home / "appendonlydir").exists()
    finally:
        stopped = cli("server-stop", cwd=proj, env=env, timeout=30)
        strays = kill_by_env("SWEEPQ_HOME", str(home))
    assert stopped.returncode == 0, stopped.stderr
    assert [p for p in strays if p != server_pid] == [], "sweepq plan left processes behind"
    assert server_pid is not None
    wait_for(lambda: not alive(server_pid), timeout=10, what="the embedded server to exit")
    assert not (proj / ".sweepq").exists()  # everything went under SWEEPQ_HOME


def test_failing_programs_give_failed_trials_with_a_reason_and_the_sweep_goes_on(r, workers, plans, redis_url):
    workers.start(2)
    plan = plans.start(
        {
            "program": program("modes.py"),
            "method": "grid",
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"mode": {"values": ["crash", "nolog", "ok", "nan"]}},
        }
    )
    missing = plans.start(
        {
            "program": str(Path(program("modes.py")).parent / "no_such_program.py"),
            "method": "grid",
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"mode": {"values": ["a", "b"]}},
        }
    )
    noexec = plans.start(
        {
            "program": program("modes.py"),
            "command": ["/nonexistent/bin/trainer", "${args}"],
            "method": "grid",
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"mode": {"values": ["a"]}},
        }
    )
    sid, sid_missing, sid_noexec = plan.sweep_id(), missing.sweep_id(), noexec.sweep_id()
    for p in (plan, missing, noexec):
        assert p.wait(90) == 0, p.stderr()

    by_mode = {t["params"]["mode"]: t for t in trials_json(redis_url, sid)}
    assert by_mode["crash"]["state"] == "failed"
    assert by_mode["crash"]["exit_code"] == 1
    assert "boom-crash-marker" in by_mode["crash"]["reason"]
    assert by_mode["nolog"]["state"] == "failed"
    assert by_mode["nolog"]["exit_code"] == 0
    assert "never logged" in by_mode["nolog"]["reason"] and "loss" in by_mode["nolog"]["reason"]
    assert by_mode["ok"]["state"] == "finished" and by_mode["ok"]["best"] == 0.25
    assert by_mode["nan"]["state"] == "finished"
    assert Store(r).sweep(sid).state == "finished"

    rows = trials_json(redis_url, sid_missing)
    assert [t["state"] for t in rows] == ["failed", "failed"]
    for t in rows:
        assert t["exit_code"] == 2
        assert "no_such_program.py" in t["reason"], t["reason"]
    assert Store(r).sweep(sid_missing).state == "finished"

    (row,) = trials_json(redis_url, sid_noexec)
    assert row["state"] == "failed"
    assert "/nonexistent/bin/trainer" in row["reason"], row["reason"]
    assert Store(r).sweep(sid_noexec).state == "finished"


def test_nan_and_non_numeric_metric_values_are_stored_but_ignored(r, workers, plans, redis_url):
    workers.start(2)
    sdk = plans.start(
        {
            "program": program("sdk_values.py"),
            "method": "grid",
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"p": {"values": [1]}},
        }
    )
    stdout = plans.start(
        {
            "program": program("modes.py"),
            "method": "grid",
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"mode": {"values": ["nan"]}},
        }
    )
    sid_sdk, sid_out = sdk.sweep_id(), stdout.sweep_id()
    assert sdk.wait(60) == 0, sdk.stderr()
    assert stdout.wait(60) == 0, stdout.stderr()
    store = Store(r)

    t = store.trial(sid_sdk, 0)
    assert t.state == "finished", t.reason
    assert (t.best, t.last, t.history_len, t.logged) == (0.75, 0.75, 1, 5)
    assert store.histories(sid_sdk, [0]) == {0: [0.75]}
    records = [json.loads(f[b"d"]) for _, f in r.xrange(f"sweepq:{{{sid_sdk}}}:metrics")]
    assert len(records) == 5
    assert records[1]["loss"] == "not-a-number"
    assert records[0]["note"] == "nan" and records[0]["loss"] != records[0]["loss"]  # NaN kept
    assert records[3] == {"loss": None, "acc": 0.1}

    t = store.trial(sid_out, 0)
    assert t.state == "finished", t.reason
    assert (t.best, t.last, t.history_len, t.logged) == (0.5, 0.5, 1, 3)
    assert store.histories(sid_out, [0]) == {0: [0.5]}
    assert "loss=nan" in store.output(sid_out, 0)


SHELL_VALUES = [
    "$(touch {canary})",
    "; touch {canary}; rm -rf {victim}",
    "`touch {canary}`",
    'it\'s "quoted" \\ back',
    "a b|c&&d>{canary} <e",
    "--not-a-flag=1 *",
]


def test_shell_metacharacters_reach_the_program_verbatim(r, workers, plans, redis_url, out_dir, tmp_path):
    canary = tmp_path / "pwned"
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("x")
    values = [v.format(canary=canary, victim=victim) for v in SHELL_VALUES]
    workers.start(2, env=base_env(SWEEPQ_TEST_OUT=str(out_dir)))
    plan = plans.start(
        {
            "program": program("argv_dump.py"),
            "method": "grid",
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"s": {"values": values}},
        }
    )
    sid = plan.sweep_id()
    assert plan.wait(60) == 0, plan.stderr()
    rows = trials_json(redis_url, sid)
    assert len(rows) == len(values)
    assert {t["state"] for t in rows} == {"finished"}
    for t in rows:
        argv = json.loads((out_dir / f"argv-{t['number']}.json").read_text())
        assert argv == [f"--s={t['params']['s']}"]
    assert sorted(t["params"]["s"] for t in rows) == sorted(values)
    assert not canary.exists()
    assert (victim / "keep").exists()


def test_unreachable_redis_is_a_one_line_error_with_exit_code_2(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"redis://127.0.0.1:{port}/0"
    path = write_config(tmp_path, {"program": "train.py", "method": "random", "parameters": {"x": {"values": [1, 2]}}})
    for args in (
        ["plan", str(path), "--redis", url, "--workers", "0"],
        ["status", "--redis", url],
        ["trials", "abc", "--redis", url],
    ):
        out = cli(*args, timeout=30)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, (args, out.stderr)
        assert "Traceback" not in out.stderr
        assert str(port) in lines[0] and "redis" in lines[0].lower(), lines[0]
        assert out.stdout == ""
    env = base_env(SWEEPQ_REDIS_URL=url)
    out = cli("plan", str(path), "--workers", "0", env=env, timeout=30)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_notebook_agent_runs_n_trials_in_process(r, redis_url):
    import sweepq

    seen: list[tuple[int, float]] = []

    def train() -> None:
        run = sweepq.init()
        seen.append((os.getpid(), run.config["lr"]))
        for step in range(2):
            sweepq.log({"loss": run.config["lr"] * (2 - step)})

    sid = sweepq.sweep(
        {
            "method": "random",
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"lr": {"min": 0.1, "max": 1.0}},
        },
        redis=redis_url,
        seed=5,
    )
    assert sweepq.agent(sid, function=train, count=4, redis=redis_url) == 4
    assert len(seen) == 4 and {pid for pid, _ in seen} == {os.getpid()}
    rows = Store(r).trials(sid)
    assert len(rows) == 4
    assert {t.state for t in rows} == {"finished"}
    assert [t.params["lr"] for t in rows] == [lr for _, lr in seen]
    for t in rows:
        assert t.best == pytest.approx(t.params["lr"]) and t.history_len == 2
    # A second agent call continues the same sweep.
    assert sweepq.agent(sid, function=train, count=1, redis=redis_url) == 1
    assert len(seen) == 5
    assert [t.state for t in Store(r).trials(sid)] == ["finished"] * 5


def test_notebook_agent_leaves_no_trial_or_rq_job_behind(r, redis_url):
    import sweepq

    def train() -> None:
        sweepq.log({"loss": sweepq.init().config["lr"]})

    sid = sweepq.sweep(
        {
            "method": "random",
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"lr": {"min": 0.1, "max": 1.0}},
        },
        redis=redis_url,
    )
    assert sweepq.agent(sid, function=train, count=2, redis=redis_url) == 2
    assert [t.state for t in Store(r).trials(sid)] == ["finished", "finished"]
    assert Queue("sweepq", connection=r).job_ids == []
