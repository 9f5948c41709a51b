"""What a person sees from `sweepq plan` and the small commands around it: a sweep that cannot
go on ends `plan` at once with the reason and the command that continues; piped stderr gets
plain progress lines; Ctrl-C says how to resume; --detach says where its log is."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import redis

from tests.helpers import Plans, Workers, cli, wait_for


def _config(program: Path, **extra: object) -> dict[str, object]:
    return {
        "program": str(program),
        "method": "random",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"min": 0.0, "max": 1.0}},
        "command": ["${interpreter}", "${program}", "${args}"],
        **extra,
    }


def test_broken_program_ends_plan_at_once_and_resume_continues(
    r: redis.Redis, redis_url: str, plans: Plans, workers: Workers, tmp_path: Path
) -> None:
    program = tmp_path / "train.py"
    program.write_text("import sys\nsys.exit('no GPU here')\n")
    workers.start(2)
    plan = plans.start(_config(program, run_cap=8))
    sid = plan.sweep_id()
    started = time.monotonic()
    assert plan.wait(timeout=90) == 3, plan.stderr()
    err = plan.stderr()
    assert time.monotonic() - started < 60
    assert f"sweep {sid} cannot go on by itself" in err and "all failed" in err and "no GPU here" in err
    assert f"sweepq plan --resume {sid}" in err
    # stderr is a file here: plain, timestamped progress lines, no terminal control codes
    assert re.search(r"^\d\d:\d\d:\d\d \[running\] done \d+/8", err, re.M), err
    assert "\x1b[" not in err

    program.write_text("print('loss=0.5')\n")  # fixed: --resume picks the sweep up and ends it
    again = cli("plan", "--resume", sid, "--redis", redis_url, "--workers", "0", timeout=120)
    assert again.returncode == 0, again.stderr
    assert f"sweep {sid} finished: all trials done" in again.stderr
    assert cli("trials", sid, "--redis", redis_url).returncode == 0


def test_ctrl_c_says_how_to_resume(r: redis.Redis, plans: Plans, workers: Workers, tmp_path: Path) -> None:
    from tests.helpers import program

    workers.start(1)
    plan = plans.start({**_config(Path(program("sleeper.py"))), "parameters": {"sleep": {"value": 30}}})
    sid = plan.sweep_id()
    wait_for(lambda: "running 1" in plan.stderr(), timeout=60, what="a running trial")
    plan.proc.send_signal(signal.SIGINT)
    assert plan.wait(timeout=60) == 130
    last = plan.stderr().strip().splitlines()[-1]
    assert last.startswith(f"interrupted: sweep {sid} is running") and not last.endswith(":")
    assert last.endswith(f"to continue planning it: sweepq plan --resume {sid}")


def test_detach_says_where_the_log_is(r: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    from tests.helpers import base_env, write_config

    path = write_config(tmp_path, {**_config(tmp_path / "none.py"), "run_cap": 1})
    env = base_env(SWEEPQ_HOME=str(tmp_path / "home"))
    out = cli("plan", str(path), "--redis", redis_url, "--workers", "0", "--detach", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    sid = out.stdout.strip()
    log = tmp_path / "home" / "logs" / f"planner-{sid}.log"
    assert f"its log: {log}" in out.stderr
    wait_for(log.exists, timeout=10, what="the planner's log")
    assert cli("cancel", sid, "--redis", redis_url).returncode == 0
