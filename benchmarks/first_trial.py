"""The first hour (issue 10): from `sweepq plan sweep.yaml` on the embedded server to the first
trial running, as a new user waits for it.

Each repeat uses a fresh SWEEPQ_HOME, so the embedded server is started too ("cold"); then a
second sweep is planned in the same home, where the server already runs ("warm"). One local
worker, a program that sleeps 2 s. Timed from just before the `sweepq plan` process starts:
- id: the sweep id on stdout (config checked, server found or started, sweep written);
- running: trial 0 claimed by the worker (`started_at` on its record).

    .venv/bin/python benchmarks/first_trial.py            # 5 repeats
    .venv/bin/python benchmarks/first_trial.py --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

CONFIG = """program: prog.py
method: random
metric: {name: loss, goal: minimize}
run_cap: 1
parameters:
  x: {min: 0.0, max: 1.0}
command: ["${interpreter}", "${program}", "${args}"]
"""


def one(home: Path) -> dict[str, float]:
    env = {**os.environ, "SWEEPQ_HOME": str(home)}
    env.pop("SWEEPQ_REDIS_URL", None)
    t0 = time.time()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweepq", "plan", "sweep.yaml", "--workers", "1"],
        cwd=home.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    sid = proc.stdout.readline().strip()
    t_id = time.time() - t0
    port = json.loads((home / "server.json").read_text())["port"]
    r = redis.Redis(port=port)
    key = f"sweepq:{{{sid}}}:trial:0"
    deadline = time.time() + 120
    while not r.hget(key, "started_at"):
        if time.time() > deadline:
            raise SystemExit("no trial started in 120 s")
        time.sleep(0.01)
    started = float(r.hget(key, "started_at") or 0)
    proc.wait(timeout=120)
    return {"id": t_id, "running": started - t0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rows: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp)
            (base / "sweep.yaml").write_text(CONFIG)
            (base / "prog.py").write_text("import time\nprint('loss=1.0', flush=True)\ntime.sleep(2)\n")
            home = base / ".sweepq"
            try:
                rows["cold"].append(one(home))
                rows["warm"].append(one(home))
            finally:
                subprocess.run(
                    [sys.executable, "-m", "sweepq", "server-stop"],
                    env={**os.environ, "SWEEPQ_HOME": str(home)},
                    capture_output=True,
                    check=False,
                )
    for kind, got in rows.items():
        ids = [g["id"] for g in got]
        run = [g["running"] for g in got]
        print(
            f"{kind}: sweep id after median {statistics.median(ids):.2f} s (max {max(ids):.2f}); "
            f"first trial running after median {statistics.median(run):.2f} s (max {max(run):.2f}) "
            f"over {len(got)} runs"
        )


if __name__ == "__main__":
    main()
