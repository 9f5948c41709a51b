"""Search quality: sweepq's bayes and random against W&B's own engine, on the same configs.

Claim (issue 6): sweepq's bayes finds optima at least as good as W&B's bayes for the same
budget. W&B's engine is its open-source `sweeps` package (`sweeps.next_run`: what W&B's server
runs). It needs pydantic/numpy pins of its own, so it lives in `benchmarks/.venv-wandb` and is
driven through a subprocess speaking one JSON object per line:

    -> {"config": <W&B sweep config>, "runs": [<SweepRun as W&B's API sends it>], "seed": int}
    <- {"params": {name: value}}   or   {"error": "..."}

Runs are sent with W&B's wire names (`summaryMetrics`, `sampledHistory`): `sweeps` 0.2.0 under
pydantic 2 ignores `summary_metrics=` (the field name) without a word, and its bayes then sees
no metric at all and is random search. The `--trap` row shows exactly that.

sweepq is driven through `sweepq.sampler.Sampler` with the `SweepConfig` loaded from the same
W&B dict, sequentially, the way the planner does with one worker: `ask(number)`, evaluate,
`tell_record({... "state": "finished", "value": y})`. That is the planner's search logic without
Redis or processes (their overhead is the other benchmarks' business).

Functions (minimize): Branin (2-D), Hartmann6 (6-D), Rosenbrock (5-D). The score of a run is its
simple regret: best value found minus the known optimum. Per function and engine: median over
seeds, IQR, and per-seed wins of sweepq bayes against W&B bayes (lower final regret wins).

    python benchmarks/search_quality.py           # 10 seeds x 50 trials (~10 min on 2 cores)
    python benchmarks/search_quality.py --quick   # 3 seeds x 30 trials (< 3 min)

Setup of W&B's engine (once):  python -m venv benchmarks/.venv-wandb &&
benchmarks/.venv-wandb/bin/pip install sweeps==0.2.0
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table  # noqa: E402

# One BLAS/torch thread per process: the pool already uses every core.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
WANDB_PYTHON = BENCH / ".venv-wandb" / "bin" / "python"

# ---------------------------------------------------------------------------------------------
# Test functions, each with its W&B config (the one both engines read) and known minimum.


def branin(p: dict[str, float]) -> float:
    x1, x2 = p["x1"], p["x2"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


_H_A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
_H_P = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
]
_H_ALPHA = [1.0, 1.2, 3.0, 3.2]


def hartmann6(p: dict[str, float]) -> float:
    x = [p[f"x{i}"] for i in range(1, 7)]
    return -sum(
        a * math.exp(-sum(_H_A[i][j] * (x[j] - _H_P[i][j]) ** 2 for j in range(6))) for i, a in enumerate(_H_ALPHA)
    )


def rosenbrock5(p: dict[str, float]) -> float:
    x = [p[f"x{i}"] for i in range(1, 6)]
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(4))


def _box(names: Sequence[str], lo: float, hi: float) -> dict[str, Any]:
    return {n: {"min": lo, "max": hi} for n in names}


FUNCTIONS: dict[str, tuple[Callable[[dict[str, float]], float], float, dict[str, Any]]] = {
    "branin": (branin, 0.397887357729739, {"x1": {"min": -5.0, "max": 10.0}, "x2": {"min": 0.0, "max": 15.0}}),
    "hartmann6": (hartmann6, -3.322368011391339, _box([f"x{i}" for i in range(1, 7)], 0.0, 1.0)),
    "rosenbrock5": (rosenbrock5, 0.0, _box([f"x{i}" for i in range(1, 6)], -2.048, 2.048)),
}


def wandb_config(fn: str, method: str) -> dict[str, Any]:
    """The sweep exactly as a user would write it for W&B (float min/max: uniform)."""
    return {
        "method": method,
        "metric": {"name": "y", "goal": "minimize"},
        "parameters": json.loads(json.dumps(FUNCTIONS[fn][2])),
    }


# ---------------------------------------------------------------------------------------------
# Engines. Each runs one (function, seed) for `trials` trials and returns the values in order.

ENGINES = ("sweepq-tpe", "sweepq-gp", "sweepq-random", "wandb-bayes", "wandb-random")
TRAP = "wandb-bayes-trap"  # history passed by field name: what a naive driver gets


def _run_sweepq(fn: str, seed: int, trials: int, algorithm: str) -> list[float]:
    import optuna

    from sweepq.config import load
    from sweepq.sampler import Sampler

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # "greenlet unavailable": see the header

    method = "random" if algorithm == "random" else "bayes"
    config = load(wandb_config(fn, method))
    sampler = Sampler(config, seed=seed, algorithm="tpe" if method == "random" else algorithm)
    if method == "bayes" and sampler.algorithm != algorithm:
        raise RuntimeError(f"sweepq sampler fell back to {sampler.algorithm} (torch missing?)")
    f = FUNCTIONS[fn][0]
    values = []
    for number in range(trials):
        s = sampler.ask(number)
        y = f(s.params)
        sampler.tell_record(
            {"number": number, "encoded": s.encoded, "state": "finished", "value": y, "intermediate": []}
        )
        values.append(y)
    return values


_WANDB: subprocess.Popen[str] | None = None


def _wandb_proc() -> subprocess.Popen[str]:
    global _WANDB
    if _WANDB is None:
        _WANDB = subprocess.Popen(
            [str(WANDB_PYTHON), "-c", _WANDB_SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
    return _WANDB


def _wandb_next(config: dict[str, Any], runs: list[dict[str, Any]], seed: int) -> dict[str, Any]:
    proc = _wandb_proc()
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps({"config": config, "runs": runs, "seed": seed}) + "\n")
    proc.stdin.flush()
    reply = json.loads(proc.stdout.readline())
    if "error" in reply:
        raise RuntimeError(f"W&B engine: {reply['error']}")
    return dict(reply["params"])


def _run_wandb(fn: str, seed: int, trials: int, method: str, *, trap: bool = False) -> list[float]:
    config = wandb_config(fn, method)
    f = FUNCTIONS[fn][0]
    runs: list[dict[str, Any]] = []
    values = []
    for number in range(trials):
        params = _wandb_next(config, runs, seed * 100_003 + number)
        y = f(params)
        run: dict[str, Any] = {
            "name": f"run-{number}",
            "state": "finished",
            "config": {k: {"value": v} for k, v in params.items()},
        }
        # W&B's API sends summaryMetrics; the trap is the pydantic field name.
        run["summary_metrics" if trap else "summaryMetrics"] = {"y": y}
        runs.append(run)
        values.append(y)
    return values


# The W&B side: stateless, one request per line. Seeds numpy's and Python's global RNGs (W&B's
# engine draws from them) per request, so each suggestion depends only on (seed, trial number, history).
_WANDB_SERVER = r"""
import json, random, sys, warnings
warnings.filterwarnings("ignore")
import numpy as np
from sweeps import SweepRun, next_run
for line in sys.stdin:
    req = json.loads(line)
    if "parse" in req:  # what the engine reads from a run: the trap check
        sys.stdout.write(json.dumps({"summary_metrics": SweepRun(**req["parse"]).summary_metrics})
                         + "\n")
        sys.stdout.flush()
        continue
    try:
        np.random.seed(req["seed"] % 2**32)  # bayes draws from numpy
        random.seed(req["seed"])  # random search draws from Python's random
        runs = [SweepRun(**r) for r in req["runs"]]
        s = next_run(req["config"], runs, validate=False)
        out = {"params": {k: v["value"] for k, v in s.config.items()}}
    except Exception as e:  # noqa: BLE001 - reported to the driver
        out = {"error": f"{type(e).__name__}: {e}"}
    sys.stdout.write(json.dumps(out, default=float) + "\n")
    sys.stdout.flush()
"""


def run_one(task: tuple[str, str, int, int]) -> dict[str, Any]:
    engine, fn, seed, trials = task
    t0 = time.perf_counter()
    if engine.startswith("sweepq-"):
        try:
            import torch

            torch.set_num_threads(1)
        except ImportError:
            pass
        values = _run_sweepq(fn, seed, trials, engine.removeprefix("sweepq-"))
    elif engine == TRAP:
        values = _run_wandb(fn, seed, trials, "bayes", trap=True)
    else:
        values = _run_wandb(fn, seed, trials, engine.removeprefix("wandb-"))
    optimum = FUNCTIONS[fn][1]
    best = [min(values[: i + 1]) - optimum for i in range(len(values))]
    return {
        "engine": engine,
        "fn": fn,
        "seed": seed,
        "values": values,
        "regret": best,
        "seconds": time.perf_counter() - t0,
    }


# ---------------------------------------------------------------------------------------------
# Summary.


def _q(xs: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default)."""
    s = sorted(xs)
    pos = q * (len(s) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def _g(x: float) -> str:
    return f"{x:.3g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.1e}"


def ask_cost(sizes: Sequence[int], *, gp_max: int = 1000) -> str:
    """CPU of one ask (median of 3) after n trials were told: what the planner pays per trial
    of a long bayes sweep. GP is skipped past `gp_max` trials."""
    import optuna

    from sweepq.config import load
    from sweepq.sampler import Sampler

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    rows = []
    for n in sizes:
        row = [f"{n:,}"]
        for algorithm in ("tpe", "gp"):
            if algorithm == "gp" and n > gp_max:
                row.append("-")
                continue
            sampler = Sampler(load(wandb_config("hartmann6", "bayes")), seed=0, algorithm=algorithm)
            rng = __import__("random").Random(n)
            records = []
            for number in range(n):
                enc = {f"x{i}": rng.random() for i in range(1, 7)}
                records.append(
                    {"number": number, "encoded": enc, "state": "finished", "value": hartmann6(enc), "intermediate": []}
                )
            sampler.rebuild(records)
            times = []
            for k in range(3):
                t = time.thread_time()
                s = sampler.ask(n + k)
                times.append(time.thread_time() - t)
                sampler.tell_record(
                    {
                        "number": n + k,
                        "encoded": s.encoded,
                        "state": "finished",
                        "value": hartmann6(s.params),
                        "intermediate": [],
                    }
                )
            row.append(f"{statistics.median(times) * 1e3:.0f} ms")
        rows.append(row)
    return "CPU of one sweepq ask after n told trials (hartmann6, 6-D; median of 3):\n" + table(
        ["told trials", "tpe", "gp"], rows
    )


def wandb_parse_check() -> list[Any]:
    """What W&B's engine reads from a run given by field name and by wire name."""
    proc = _wandb_proc()
    assert proc.stdin is not None and proc.stdout is not None
    out = []
    for key in ("summary_metrics", "summaryMetrics"):
        proc.stdin.write(json.dumps({"parse": {"state": "finished", key: {"y": 1.0}}}) + "\n")
        proc.stdin.flush()
        out.append(json.loads(proc.stdout.readline())["summary_metrics"])
    return out


def summarize(
    results: list[dict[str, Any]], engines: Sequence[str], seeds: int, trials: int, parsed: list[Any] | None = None
) -> str:
    by: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for r in results:
        by.setdefault((r["engine"], r["fn"]), {})[r["seed"]] = r
    lines = []
    checkpoint = max(1, trials // 2)
    rows = []
    for fn in FUNCTIONS:
        base = by.get(("wandb-bayes", fn), {})
        base_med = statistics.median(r["regret"][-1] for r in base.values()) if base else None
        for engine in engines:
            runs = by.get((engine, fn))
            if not runs:
                continue
            final = [r["regret"][-1] for r in runs.values()]
            half = [r["regret"][checkpoint - 1] for r in runs.values()]
            med = statistics.median(final)
            wins = ""
            if engine != "wandb-bayes" and base:
                w = sum(1 for s, r in runs.items() if s in base and r["regret"][-1] < base[s]["regret"][-1])
                t = sum(1 for s, r in runs.items() if s in base and r["regret"][-1] == base[s]["regret"][-1])
                wins = f"{w}/{len(runs)}" + (f" ({t} tie)" if t else "")
            ratio = "1.00 (base)" if engine == "wandb-bayes" else ("-" if not base_med else f"{med / base_med:.2f}")
            secs = statistics.fmean(r["seconds"] for r in runs.values()) / trials
            rows.append(
                [
                    fn,
                    engine,
                    _g(statistics.median(half)),
                    _g(med),
                    f"{_g(_q(final, 0.25))}..{_g(_q(final, 0.75))}",
                    ratio,
                    wins,
                    f"{secs * 1e3:.0f} ms",
                ]
            )
        rows.append([""] * 8)
    lines.append(
        f"Simple regret (best found - optimum; lower is better), {seeds} seeds x "
        f"{trials} trials, sequential (1 worker)."
    )
    lines.append(
        "ratio = median final regret / W&B bayes's median; wins = seeds where the "
        "engine's final regret < W&B bayes's on the same seed."
    )
    lines.append(
        table(
            [
                "function",
                "engine",
                f"median@{checkpoint}",
                f"median@{trials}",
                "IQR",
                "ratio",
                "wins vs W&B bayes",
                "time/ask",
            ],
            rows[:-1],
        )
    )
    # Sanity: W&B bayes must beat W&B random, or its history never reached it.
    sanity = []
    for fn in FUNCTIONS:
        b, r = by.get(("wandb-bayes", fn), {}), by.get(("wandb-random", fn), {})
        if b and r:
            w = sum(1 for s in b if s in r and b[s]["regret"][-1] < r[s]["regret"][-1])
            sanity.append(
                f"{fn}: W&B bayes beats W&B random on {w}/{len(b)} seeds "
                f"(median {_g(statistics.median(x['regret'][-1] for x in b.values()))}"
                f" vs {_g(statistics.median(x['regret'][-1] for x in r.values()))})"
            )
    trap = by.get((TRAP, "branin"), {})
    if trap:
        rnd = by.get(("wandb-random", "branin"), {})
        sanity.append(
            "branin: W&B bayes fed history by field name (summary_metrics=, the "
            "pydantic-2 trap): median "
            f"{_g(statistics.median(x['regret'][-1] for x in trap.values()))}"
            + (f" vs W&B random {_g(statistics.median(x['regret'][-1] for x in rnd.values()))}" if rnd else "")
        )
    if parsed:
        sanity.append(
            f"SweepRun(summary_metrics={{'y': 1.0}}) reads as {parsed[0]}; "
            f"SweepRun(summaryMetrics={{'y': 1.0}}) reads as {parsed[1]}"
        )
    lines.append("")
    lines.append("Sanity check of the W&B driver:")
    lines.extend("  " + s for s in sanity)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 seeds x 30 trials")
    ap.add_argument("--seeds", type=int)
    ap.add_argument("--trials", type=int)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument(
        "--ask-cost", metavar="N,N,...", help="only time one ask after N told trials (hartmann6), TPE and GP"
    )
    ap.add_argument("--no-trap", action="store_true", help="skip the field-name trap control")
    args = ap.parse_args(argv)
    seeds = args.seeds or (3 if args.quick else 10)
    trials = args.trials or (30 if args.quick else 50)
    engines = [e for e in args.engines.split(",") if e]
    if any(e.startswith("wandb") for e in engines) and not WANDB_PYTHON.exists():
        print(
            f"W&B's engine is not installed: python -m venv {WANDB_PYTHON.parent.parent} && "
            f"{WANDB_PYTHON.parent}/pip install sweeps==0.2.0",
            file=sys.stderr,
        )
        return 2
    if "sweepq-gp" in engines:
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            print("torch is not installed: skipping sweepq-gp (pip install torch)", file=sys.stderr)
            engines.remove("sweepq-gp")
    rev = (
        subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=BENCH.parent, capture_output=True, text=True, check=False
        ).stdout.strip()
        or "?"
    )
    if args.ask_cost:
        text = (
            f"search_quality --ask-cost @ {rev} ({_dt.datetime.now():%Y-%m-%d %H:%M}, "
            f"{os.cpu_count()} cpus, 1 thread)\n\n" + ask_cost([int(x) for x in args.ask_cost.split(",")])
        )
        print(text)
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"search_quality-ask_cost-{_dt.date.today().isoformat()}.txt"
        path.write_text(text + "\n")
        print(f"\nwrote {path.relative_to(BENCH.parent)}")
        return 0
    tasks = [(e, fn, s, trials) for e in engines for fn in FUNCTIONS for s in range(seeds)]
    if not args.no_trap and "wandb-bayes" in engines:
        tasks += [(TRAP, "branin", s, trials) for s in range(seeds)]
    # Slow engines first so the pool ends together.
    cost = {"wandb-bayes": 0, TRAP: 0, "sweepq-gp": 1}
    tasks.sort(key=lambda t: (cost.get(t[0], 2), t[1]))
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(run_one, tasks))
    wall = time.perf_counter() - t0
    shown = engines + ([TRAP] if any(t[0] == TRAP for t in tasks) else [])
    parsed = wandb_parse_check() if any(e.startswith("wandb") for e in engines) else None
    text = summarize(results, [e for e in shown if e != TRAP], seeds, trials, parsed)
    import importlib.util

    import optuna

    greenlet = "greenlet" if importlib.util.find_spec("greenlet") else "no greenlet (GP asks slower)"
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    head = (
        f"search_quality @ {rev} {'--quick ' if args.quick else ''}({stamp}, "
        f"{platform.python_version()}, {os.cpu_count()} cpus, optuna "
        f"{optuna.__version__}, {greenlet}, sweeps 0.2.0, wall {wall:.0f} s, {args.jobs} processes, "
        f"5-min load average {os.getloadavg()[1]:.1f})"
    )
    out = head + "\n\n" + text
    print(out)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"search_quality-{_dt.date.today().isoformat()}{'-quick' if args.quick else ''}.txt"
    raw = {
        "command": " ".join(["python", "benchmarks/search_quality.py", *(argv or sys.argv[1:])]),
        "seeds": seeds,
        "trials": trials,
        "wall_s": wall,
        "runs": [{k: r[k] for k in ("engine", "fn", "seed", "seconds", "regret", "values")} for r in results],
    }
    path.write_text(
        out
        + "\n\nRaw (per run: best-so-far regret and values in trial order):\n"
        + json.dumps(raw, default=float)
        + "\n"
    )
    print(f"\nwrote {path.relative_to(BENCH.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
