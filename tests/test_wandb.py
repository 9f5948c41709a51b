"""W&B users switch without rewriting: unchanged `import wandb` scripts (the real wandb package,
no account, no network) and the same scripts with `import sweepq as wandb`, run end to end by
`sweepq agent` and by real rq workers under `sweepq plan`, on a real server.

Each wandb trial costs about a second (importing wandb), so these tests keep to a few trials."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from sweepq.store import Store
from tests.helpers import base_env, cli, program, trials_json, write_config

pytest.importorskip("wandb")
pytestmark = pytest.mark.timeout(180)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No W&B credentials anywhere (a fresh HOME, no API key), as for a new user."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = base_env(HOME=str(home), WANDB_TEST_OUT=str(tmp_path), **extra)
    for key in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR", "NETRC", "WANDB_BASE_URL", "WANDB_DISABLED"):
        env.pop(key, None)
    return env


def _alias(tmp_path: Path, name: str) -> str:
    """The same script with the one-line change."""
    text = Path(program(name)).read_text().replace("import wandb\n", "import sweepq as wandb\n")
    assert "import sweepq as wandb" in text
    path = tmp_path / f"alias_{name}"
    path.write_text(text)
    return str(path)


def _seen(tmp_path: Path) -> dict[int, dict[str, Any]]:
    return {int(p.stem): json.loads(p.read_text()) for p in tmp_path.glob("[0-9]*.json")}


@pytest.mark.parametrize("variant", ["wandb", "alias"])
def test_argparse_script_through_sweepq_agent(r, redis_url, tmp_path, variant):
    prog = program("wandb_argparse.py") if variant == "wandb" else _alias(tmp_path, "wandb_argparse.py")
    path = write_config(
        tmp_path,
        {
            "program": prog,
            "method": "grid",
            "metric": {"name": "val/loss", "goal": "minimize"},
            "parameters": {"lr": {"values": [0.1, 0.2]}, "slope": {"values": [1, 2]}, "epochs": {"value": 4}},
        },
    )
    env = _env(tmp_path)
    made = cli("sweep", str(path), "--redis", redis_url, env=env)
    assert made.returncode == 0, made.stderr
    sid = made.stdout.strip()
    ran = cli("agent", sid, "--count", "2", "--redis", redis_url, env=env, timeout=120, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert f"agent starting trial 0 of sweep {sid} with config:" in ran.stderr
    assert "\tlr: 0.1" in ran.stderr and "trial 1 finished" in ran.stderr
    assert "agent ran 2 trials" in ran.stderr
    rows = {t["number"]: t for t in trials_json(redis_url, sid)}
    seen = _seen(tmp_path)
    assert set(rows) == set(seen) == {0, 1}
    for n, t in rows.items():
        assert t["state"] == "finished", t
        # the sweep's values, not argparse's defaults, in wandb.config
        assert seen[n]["config"]["lr"] == t["params"]["lr"]
        assert seen[n]["config"]["slope"] == t["params"]["slope"]
        assert seen[n]["config"]["epochs"] == 4
        # every wandb.log value reached sweepq: 4 epochs of val/loss
        assert t["history_len"] == 4  # values of the metric; the table row has none
        assert t["best"] == pytest.approx(10 - 3 * t["params"]["slope"])
        assert t["summary"]["val/loss"] == {"min": pytest.approx(t["best"])}  # define_metric(summary="min")
        assert t["summary"]["best_epoch"] == 3  # set on run.summary by the script
        assert t["summary"]["table"] == "<Table>"
        if variant == "alias":
            assert os.path.isdir(seen[n]["dir"])  # (wandb's own disabled run names a folder it never makes)
    if variant == "wandb":
        assert {s["mode"] for s in seen.values()} == {"disabled"}  # no account: no prompt, no network
        assert seen[0]["run_id"] == f"{sid}-0-1"


@pytest.mark.parametrize("variant", ["wandb", "alias"])
def test_argumentless_nested_script_on_rq_workers(r, redis_url, workers, plans, tmp_path, variant):
    prog = program("wandb_nested.py") if variant == "wandb" else _alias(tmp_path, "wandb_nested.py")
    env = _env(tmp_path)
    workers.start(2, env=env)
    plan = plans.start(
        {
            "program": prog,
            "method": "grid",
            "metric": {"name": "val/loss", "goal": "minimize"},
            "parameters": {
                "optimizer": {"parameters": {"name": {"value": "adam"}, "lr": {"values": [0.01, 0.02]}}},
                "epochs": {"value": 3},
            },
            "command": ["${env}", "${interpreter}", "${program}"],  # no arguments at all
        },
        env=env,
    )
    sid = plan.sweep_id()
    assert plan.wait(120) == 0, plan.stderr()
    rows = {t["number"]: t for t in trials_json(redis_url, sid)}
    seen = _seen(tmp_path)
    assert set(seen) == {0, 1}
    for n, t in rows.items():
        assert t["state"] == "finished", t
        assert seen[n]["config"]["optimizer"] == {"name": "adam", "lr": t["params"]["optimizer"]["lr"]}
        assert seen[n]["config"]["epochs"] == 3
        assert t["history_len"] == 3  # explicit steps: train/loss and val/loss merged per step
        assert t["best"] == pytest.approx(t["params"]["optimizer"]["lr"])


HYPERBAND = {"type": "hyperband", "max_iter": 27, "s": 2, "eta": 3}


@pytest.mark.parametrize("runner", ["rq-worker", "agent"])
def test_wandb_logged_metrics_drive_hyperband_pruning(r, redis_url, workers, plans, tmp_path, runner):
    # Bands 3 and 9 (max_iter 27, s 2). One worker (or `sweepq agent`, planning and pruning by
    # itself) runs the grid in order: the winner logs its 8 epochs first, then the loser is worse
    # at band 3 and is pruned there, from values the unchanged script sent with wandb.log.
    env = _env(tmp_path)
    config = {
        "program": program("wandb_argparse.py"),
        "method": "grid",
        "metric": {"name": "val/loss", "goal": "minimize"},
        "early_terminate": HYPERBAND,
        "parameters": {"slope": {"values": [1.0, 0.1]}, "epochs": {"value": 8}, "delay": {"value": 0.2}},
    }
    if runner == "rq-worker":
        workers.start(1, env=env)
        plan = plans.start(config, env=env)
        sid = plan.sweep_id()
        assert plan.wait(150) == 0, plan.stderr()
    else:
        made = cli("sweep", str(write_config(tmp_path, config)), "--redis", redis_url, env=env)
        sid = made.stdout.strip()
        ran = cli("agent", sid, "--redis", redis_url, env=env, timeout=150, cwd=tmp_path)
        assert ran.returncode == 0, ran.stderr
        assert "trial 1 pruned" in ran.stderr, ran.stderr
    rows = {t["params"]["slope"]: t for t in trials_json(redis_url, sid)}
    assert rows[1.0]["state"] == "finished", rows[1.0]
    assert rows[1.0]["history_len"] == 8
    t = rows[0.1]
    assert t["state"] == "pruned", t
    assert 3 <= t["history_len"] < 8, t
    assert t["reason"].startswith("hyperband band 3:"), t


def test_notebook_mode_with_the_alias(r, redis_url, tmp_path):
    out = tmp_path / "nb.json"
    env = _env(tmp_path, SWEEPQ_REDIS_URL=redis_url)
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, program("wandb_notebook.py"), str(out)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(out.read_text())
    assert got["ran"] == 2
    assert sorted(s["lr"] for s in got["seen"]) == [0.1, 0.3]
    assert {s["n"] for s in got["seen"]} == {2}
    for s in got["seen"]:
        assert s["summary"]["val/loss"] == {"min": pytest.approx(s["lr"] / 2)}
        assert s["summary"]["hist"] == "<Histogram>"
    sweep = Store(r).sweep(got["sweep_id"])
    assert sweep.config.project == "demo" and sweep.config.entity == "me"
    rows = trials_json(redis_url, got["sweep_id"])
    assert [t["state"] for t in rows] == ["finished", "finished"]


def test_agent_is_a_worker_when_a_planner_runs_elsewhere(r, redis_url, plans, tmp_path):
    # `sweepq plan --workers 0` holds the lease and queues trials; `sweepq agent` takes them
    # (this sweep's only) and runs the program in this terminal, as `wandb agent` would.
    plan = plans.start(
        {
            "program": program("quad.py"),
            "method": "grid",
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"x": {"values": [0, 1]}, "y": {"value": 0}},
        }
    )
    sid = plan.sweep_id()
    done = cli("agent", sid, "--redis", redis_url, timeout=90, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "agent ran 2 trials" in done.stderr, done.stderr
    assert plan.wait(60) == 0, plan.stderr()
    rows = trials_json(redis_url, sid)
    assert [t["state"] for t in rows] == ["finished", "finished"]
    assert all(t["worker"].startswith("agent:") for t in rows), rows


def test_function_mode_connects_the_real_wandb_in_process(r, redis_url, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "fn.json"
    env = _env(tmp_path, SWEEPQ_REDIS_URL=redis_url)
    done = subprocess.run(
        [sys.executable, program("wandb_function.py"), str(out)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(out.read_text())
    assert got["ran"] == 2
    assert sorted(s["lr"] for s in got["seen"]) == [0.1, 0.2]
    assert len({s["id"] for s in got["seen"]}) == 2  # a new wandb run per trial
    for t in trials_json(redis_url, got["sweep_id"]):
        assert t["state"] == "finished", t
        assert t["history_len"] == 3
        assert t["best"] == pytest.approx(t["params"]["lr"])


def test_program_env_is_w_and_bs_agent_env(tmp_path):
    from sweepq import wandb_bridge
    from sweepq.model import Settings, Sweep, SweepState, Trial, TrialState

    trial = Trial(
        sweep_id="abc", number=3, state=TrialState.RUNNING, params={"lr": 0.1}, encoded={}, attempt=2, job_id="j"
    )
    sweep = Sweep(
        id="abc",
        state=SweepState.RUNNING,
        raw_config={"project": "demo", "entity": "team"},
        settings=Settings(),
        counts={},
        created=4,
        cap=None,
        created_at=0.0,
        state_reason=None,
    )
    home = tmp_path / "home"
    home.mkdir()
    none = wandb_bridge.program_env(tmp_path, sweep, trial, {"HOME": str(home)})
    assert none["WANDB_MODE"] == "disabled" and none["WANDB_SWEEP_ID"] == "abc"
    assert none["WANDB_RUN_ID"] == "abc-3-2"
    assert none["PYTHONPATH"] == str(wandb_bridge.HOOK_DIR)
    assert Path(none["WANDB_SWEEP_PARAM_PATH"]).read_text().startswith("wandb_version: 1")
    online = wandb_bridge.program_env(tmp_path, sweep, trial, {"HOME": str(home), "WANDB_API_KEY": "k" * 40})
    assert "WANDB_MODE" not in online and "WANDB_SWEEP_ID" not in online  # W&B's server knows no such sweep
    assert (online["WANDB_PROJECT"], online["WANDB_ENTITY"], online["WANDB_RUN_GROUP"]) == (
        "demo",
        "team",
        "sweepq-abc",
    )


def test_two_agents_share_one_sweep(r, redis_url, tmp_path):
    # Two terminals (or boxes) run `sweepq agent ID`: one plans, the other waits for trials and
    # the planning agent queues one for it; every trial runs once.
    import subprocess
    import sys

    config = {
        "program": program("quad.py"),
        "method": "grid",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"values": [0, 1, 2, 3]}, "sleep": {"value": 1.5}},
    }
    made = cli("sweep", str(write_config(tmp_path, config)), "--redis", redis_url)
    sid = made.stdout.strip()
    argv = [sys.executable, "-m", "sweepq", "agent", sid, "--redis", redis_url]
    agents = [subprocess.Popen(argv, env=base_env(), cwd=tmp_path, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [a.communicate(timeout=120)[1] for a in agents]
    assert [a.returncode for a in agents] == [0, 0], outs
    ran = [int(next(line for line in o.splitlines() if "agent ran" in line).split()[3]) for o in outs]
    assert sum(ran) == 4 and min(ran) >= 1, outs
    rows = trials_json(redis_url, sid)
    assert [t["state"] for t in rows] == ["finished"] * 4
    assert all(t["attempts"] == 1 for t in rows)
