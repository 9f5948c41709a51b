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
import collections
import datetime as _dt
import functools
import itertools
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tables  # noqa: E402
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


# A mixed space as users write it: a log-scaled float, numeric values, a string categorical and a
# float. Synthetic loss whose best learning rate moves with the optimizer and the batch size
# (the linear scaling rule); optimum 0 at adam, batch 32, lr 5e-4, dropout 0.2.
_MIXED = {
    "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1},
    "batch_size": {"values": [16, 32, 64, 128, 256]},
    "optimizer": {"values": ["adam", "sgd", "rmsprop"]},
    "dropout": {"min": 0.0, "max": 0.5},
}
_MIXED_LR = {"adam": -3.0, "sgd": -1.5, "rmsprop": -3.3}
_MIXED_COST = {"adam": 0.0, "sgd": 0.05, "rmsprop": 0.02}


def mixed(p: dict[str, Any]) -> float:
    best_lr = _MIXED_LR[p["optimizer"]] + math.log10(p["batch_size"] / 64)
    return (
        0.5 * (math.log10(p["lr"]) - best_lr) ** 2
        + 4.0 * (p["dropout"] - 0.2) ** 2
        + 0.02 * (math.log2(p["batch_size"]) - 5) ** 2
        + _MIXED_COST[p["optimizer"]]
    )


# Seven `values:` parameters, 9 x 5 x 4 x 3 x 3 x 3 x 3 = 14,580 points, the shape of the seed
# document's example space (numeric lists and one string list). A synthetic validation loss
# with the interactions real ones have: the best lr depends on optimizer and batch size, the
# best dropout and weight decay on the network's size.
_SEVEN = {
    "learning_rate": {"values": [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2]},
    "batch_size": {"values": [16, 32, 64, 128, 256]},
    "hidden": {"values": [64, 128, 256, 512]},
    "layers": {"values": [1, 2, 3]},
    "dropout": {"values": [0.0, 0.25, 0.5]},
    "weight_decay": {"values": [0.0, 1e-4, 1e-3]},
    "optimizer": {"values": ["adam", "sgd", "adamw"]},
}
_SEVEN_LR = {"adam": -3.0, "sgd": -1.7, "adamw": -2.8}


def seven(p: dict[str, Any]) -> float:
    size = math.log2(p["hidden"]) + 0.8 * (p["layers"] - 1)  # 6 .. 10.6
    best_lr = _SEVEN_LR[p["optimizer"]] + 0.5 * math.log10(p["batch_size"] / 64) - 0.1 * (size - 8)
    best_dropout = min(0.5, max(0.0, 0.12 * (size - 7)))
    wd = math.log10(p["weight_decay"] + 1e-5)  # -5 .. -3
    best_wd = -3.0 if p["optimizer"] == "adamw" else -4.0
    return (
        0.15
        + 0.4 * (math.log10(p["learning_rate"]) - best_lr) ** 2
        + 0.02 * (size - 8.5) ** 2
        + 0.3 * (p["dropout"] - best_dropout) ** 2
        + 0.01 * (wd - best_wd) ** 2
        + 0.01 * (math.log2(p["batch_size"]) - 6) ** 2
        + (0.02 if p["optimizer"] == "sgd" else 0.0)
    )


def _values(grid: dict[str, list[Any]]) -> dict[str, Any]:
    return {k: {"values": list(v)} for k, v in grid.items()}


@dataclass(frozen=True)
class Problem:
    """A minimization problem: the W&B parameters both engines read, f, and its known minimum."""

    parameters: dict[str, Any]
    f: Callable[[dict[str, Any]], float]
    optimum: float


def _grid_min(parameters: dict[str, Any], f: Callable[[dict[str, Any]], float]) -> float:
    names = list(parameters)
    return min(
        f(dict(zip(names, combo, strict=True)))
        for combo in itertools.product(*(parameters[n]["values"] for n in names))
    )


def _table(name: str) -> Problem:
    grid, lookup = tables.load(name)
    names = list(grid)
    return Problem(_values(grid), lambda p: lookup[tuple(p[n] for n in names)], min(lookup.values()))


_SYNTHETIC: dict[str, Callable[[], Problem]] = {
    "branin": lambda: Problem(
        {"x1": {"min": -5.0, "max": 10.0}, "x2": {"min": 0.0, "max": 15.0}}, branin, 0.397887357729739
    ),
    "hartmann6": lambda: Problem(_box([f"x{i}" for i in range(1, 7)], 0.0, 1.0), hartmann6, -3.322368011391339),
    "rosenbrock5": lambda: Problem(_box([f"x{i}" for i in range(1, 6)], -2.048, 2.048), rosenbrock5, 0.0),
    "mixed": lambda: Problem(_MIXED, mixed, 0.0),
    "seven_values": lambda: Problem(_SEVEN, seven, _grid_min(_SEVEN, seven)),
}


@functools.cache
def problem(name: str) -> Problem:
    """A problem by name; a table is read from benchmarks/tables/ on first use."""
    return _SYNTHETIC[name]() if name in _SYNTHETIC else _table(name)


PROBLEMS = ("branin", "hartmann6", "rosenbrock5", "mixed", "seven_values", "digits_mlp", "cancer_gb")


def wandb_config(fn: str, method: str) -> dict[str, Any]:
    """The sweep exactly as a user would write it for W&B (float min/max: uniform)."""
    return {
        "method": method,
        "metric": {"name": "y", "goal": "minimize"},
        "parameters": json.loads(json.dumps(problem(fn).parameters)),
    }


# ---------------------------------------------------------------------------------------------
# Engines. Each is an ask/tell pair over one (problem, seed); `simulate` keeps `pending` other
# trials running at every ask (a trial's value is computed when asked, told when it "ends": the
# oldest first), the way `pending + 1` workers would.

ENGINES = (
    "sweepq-auto",  # the default install: no torch, so scikit-learn's GP
    "sweepq-gp",  # the gp extra: Optuna's GPSampler (torch)
    "sweepq-tpe",
    "optuna-tpe",  # Optuna's defaults as a user writes them (suggest_categorical for values)
    "wandb-bayes",
    "wandb-random",
)
OPTIONAL = (
    "sweepq-random",
    "optuna-gp",
    "sweepq-sklearn-fantasies",
    "sweepq-sklearn-liar-mean",
    "sweepq-sklearn-bucb+b4",
    "sweepq-sklearn-bucb-hybrid",
)
TRAP = "wandb-bayes-trap"  # history passed by field name: what a naive driver gets

Ask = Callable[[int], tuple[Any, dict[str, Any]]]
Tell = Callable[[Any, float], None]


def simulate(ask: Ask, tell: Tell, f: Callable[[dict[str, Any]], float], trials: int, pending: int) -> list[float]:
    inflight: collections.deque[tuple[Any, float]] = collections.deque()
    values = []
    for number in range(trials):
        while len(inflight) > pending:
            tell(*inflight.popleft())
        handle, params = ask(number)
        y = f(params)
        inflight.append((handle, y))
        values.append(y)
    return values


def _gp_option(option: str) -> None:
    """One ``+option`` of a ``sweepq-sklearn-<rule>`` engine: set the module knob it names."""
    from sweepq import gp as gp_module
    from sweepq import sampler as sampler_module

    if option == "sobol":
        sampler_module._GP_STARTUP = "sobol"
    elif option == "wide":
        gp_module._N_RANDOM, gp_module._N_LOCAL = 3000, 150
        gp_module._REFINE = (0.1, 0.03, 0.01, 0.003, 0.001)
    elif option == "nu15":  # Matern 3/2 on all-discrete spaces
        gp_module.NU_FINITE = 1.5
    elif option == "plugin":  # EI's bar at the best posterior mean of the finished trials
        gp_module.INCUMBENT = "mean"
    elif option.startswith("noise"):  # the noise variance's upper bound: +noise1
        gp_module.NOISE_BOUNDS = (1e-6, float(option.removeprefix("noise")))
    elif option.startswith("r"):
        sampler_module._GP_RESTARTS = int(option[1:])
    elif option == "bsched":
        sampler_module._GP_UCB_BETA = None
    elif option.startswith("b"):
        sampler_module._GP_UCB_BETA = float(option[1:])
    else:
        raise SystemExit(f"unknown option {option!r}")


def _sweepq(fn: str, seed: int, algorithm: str) -> tuple[Ask, Tell]:
    import optuna

    from sweepq import sampler as sampler_module
    from sweepq.config import load
    from sweepq.sampler import Sampler

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    method = "random" if algorithm == "random" else "bayes"
    want = {"gp": "gp", "tpe": "tpe", "random": "random"}.get(algorithm, "sklearn-gp")
    if want == "sklearn-gp":
        sampler_module._torch_available = lambda: False  # the default install has no torch
    if algorithm.startswith("sklearn-"):  # a pending-trial rule to compare: sweepq-sklearn-liar-max...
        # ...-believer+sobol+wide+r3: options to measure (start-up design, search size, restarts);
        # ...-bucb+b4 / +bsched: GP-BUCB's beta (fixed, or the 0.2 d log 2t schedule)
        rule, *options = algorithm.removeprefix("sklearn-").split("+")
        sampler_module._GP_PENDING = rule  # type: ignore[assignment]
        for option in options:
            _gp_option(option)
    config = load(wandb_config(fn, method))
    sampler = Sampler(config, seed=seed, algorithm=algorithm if algorithm in ("gp", "tpe") else "auto")
    if method == "random":
        sampler = Sampler(config, seed=seed)
    if sampler.algorithm != want:
        raise RuntimeError(f"sweepq sampler is {sampler.algorithm}, not {want} (torch missing?)")

    def ask(number: int) -> tuple[Any, dict[str, Any]]:
        s = sampler.ask(number)
        return (number, s.encoded), s.params

    def tell(handle: Any, y: float) -> None:
        number, encoded = handle
        sampler.tell_record({"number": number, "encoded": encoded, "state": "finished", "value": y})

    return ask, tell


def _optuna(fn: str, seed: int, kind: str) -> tuple[Ask, Tell]:
    """Optuna with its defaults, the parameters written the obvious way."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler = optuna.samplers.GPSampler(seed=seed) if kind == "gp" else optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(sampler=sampler)
    spec = problem(fn).parameters

    def ask(number: int) -> tuple[Any, dict[str, Any]]:
        trial = study.ask()
        params: dict[str, Any] = {}
        for name, p in spec.items():
            if "values" in p:
                params[name] = trial.suggest_categorical(name, p["values"])
            elif isinstance(p["min"], int) and isinstance(p["max"], int):
                params[name] = trial.suggest_int(name, p["min"], p["max"])
            else:
                log = p.get("distribution") == "log_uniform_values"
                params[name] = trial.suggest_float(name, p["min"], p["max"], log=log)
        return trial, params

    def tell(trial: Any, y: float) -> None:
        study.tell(trial, y)

    return ask, tell


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


def _wandb(fn: str, seed: int, method: str, *, trap: bool = False) -> tuple[Ask, Tell]:
    """W&B's engine sees running runs as W&B's server sends them (state running, no metric)."""
    config = wandb_config(fn, method)
    runs: list[dict[str, Any]] = []

    def ask(number: int) -> tuple[Any, dict[str, Any]]:
        params = _wandb_next(config, runs, seed * 100_003 + number)
        run: dict[str, Any] = {
            "name": f"run-{number}",
            "state": "running",
            "config": {k: {"value": v} for k, v in params.items()},
        }
        runs.append(run)
        return run, params

    def tell(run: Any, y: float) -> None:
        run["state"] = "finished"
        # W&B's API sends summaryMetrics; the trap is the pydantic field name.
        run["summary_metrics" if trap else "summaryMetrics"] = {"y": y}

    return ask, tell


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


def run_one(task: tuple[str, str, int, int, int]) -> dict[str, Any]:
    engine, fn, seed, trials, pending = task
    t0 = time.perf_counter()
    if engine.startswith("sweepq-"):
        try:
            import torch

            torch.set_num_threads(1)
        except ImportError:
            pass
        ask, tell = _sweepq(fn, seed, engine.removeprefix("sweepq-"))
    elif engine.startswith("optuna-"):
        ask, tell = _optuna(fn, seed, engine.removeprefix("optuna-"))
    elif engine == TRAP:
        ask, tell = _wandb(fn, seed, "bayes", trap=True)
    else:
        ask, tell = _wandb(fn, seed, engine.removeprefix("wandb-"))
    prob = problem(fn)
    values = simulate(ask, tell, prob.f, trials, pending)
    best = [min(values[: i + 1]) - prob.optimum for i in range(len(values))]
    return {
        "engine": engine,
        "fn": fn,
        "seed": seed,
        "pending": pending,
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


def ask_cost(sizes: Sequence[int], *, gp_max: int = 1000, pending: int = 4) -> str:
    """CPU of one ask (median of 3) after n trials were told, with `pending` running: what the
    planner pays per trial of a long bayes sweep. Each backend is forced (auto would hand a
    sweep to TPE from 300 trials on); GPs are skipped past `gp_max` trials."""
    import random

    import optuna

    from sweepq import sampler as sampler_module
    from sweepq.config import load
    from sweepq.sampler import Sampler

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # (backend, problem): hartmann6 is continuous; seven_values is a 14,580-point grid, which the
    # scikit-learn GP scores point by point.
    backends = (("tpe", "hartmann6"), ("sklearn-gp", "hartmann6"), ("gp", "hartmann6"), ("sklearn-gp", "seven_values"))
    has_torch = sampler_module._torch_available()
    rows = []
    for n in sizes:
        row = [f"{n:,}"]
        for backend, fn in backends:
            if backend != "tpe" and n > gp_max or backend == "gp" and not has_torch:
                row.append("-")
                continue
            sampler_module._torch_available = (lambda: has_torch) if backend == "gp" else (lambda: False)
            sampler = Sampler(load(wandb_config(fn, "bayes")), seed=0, algorithm="tpe" if backend == "tpe" else "gp")
            rng = random.Random(n)
            spec = problem(fn).parameters
            records: list[dict[str, Any]] = []
            for number in range(n + pending):
                enc: dict[str, Any] = {
                    k: rng.randrange(len(v["values"])) if "values" in v else rng.random() for k, v in spec.items()
                }
                done = number < n
                value = hartmann6(enc) if fn == "hartmann6" else sum((i - 1.5) ** 2 for i in enc.values())
                records.append(
                    {
                        "number": number,
                        "encoded": enc,
                        "state": "finished" if done else "running",
                        "value": value if done else None,
                        "intermediate": [],
                    }
                )
            sampler.rebuild(records)
            times = []
            for k in range(3):
                t = time.thread_time()
                sampler.ask(n + pending + k)
                times.append(time.thread_time() - t)
                sampler.forget(n + pending + k)
            ms = statistics.median(times) * 1e3
            row.append(f"{ms:,.0f} ms")
        rows.append(row)
    sampler_module._torch_available = lambda: has_torch
    return (
        f"CPU of one sweepq ask after n finished trials and {pending} running (hartmann6, 6-D, and the"
        " seven_values grid, 14,580 points; median of 3; `auto` uses the GP below 300 trials, TPE from there):\n"
        + table(
            [
                "finished trials",
                "tpe",
                "scikit-learn GP (default install)",
                "Optuna GP (torch)",
                "scikit-learn GP, seven_values grid",
            ],
            rows,
        )
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


def _tie(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(b))


Runs = dict[tuple[str, str, int], dict[int, dict[str, Any]]]


def _score(by: Runs, engine: str, fn: str, pending: int, baseline: str = "wandb-bayes") -> dict[str, Any] | None:
    """Median final regret, IQR, ratio and wins/ties against `baseline` (W&B bayes unless told) at
    the same pending: a sweepq variant can be judged against the default without W&B's runs."""
    runs = by.get((engine, fn, pending))
    if not runs:
        return None
    base = by.get((baseline, fn, pending), {})
    final = [r["regret"][-1] for r in runs.values()]
    med = statistics.median(final)
    out: dict[str, Any] = {
        "median": med,
        "iqr": (_q(final, 0.25), _q(final, 0.75)),
        "n": len(runs),
        "ask": statistics.fmean(r["seconds"] / len(r["regret"]) for r in runs.values()),
    }
    if base and engine != baseline:
        base_med = statistics.median(r["regret"][-1] for r in base.values())
        pairs = [(r["regret"][-1], base[s]["regret"][-1]) for s, r in runs.items() if s in base]
        out["ties"] = sum(_tie(a, b) for a, b in pairs)
        out["wins"] = sum(a < b and not _tie(a, b) for a, b in pairs)
        out["ratio"] = med / base_med if base_med > 0 else (1.0 if med == 0 else math.inf)
    return out


def summarize(
    results: list[dict[str, Any]],
    engines: Sequence[str],
    fns: Sequence[str],
    pendings: Sequence[int],
    seeds: int,
    trials: int,
    parsed: list[Any] | None = None,
    baseline: str = "wandb-bayes",
) -> str:
    by: Runs = {}
    for r in results:
        by.setdefault((r["engine"], r["fn"], r["pending"]), {})[r["seed"]] = r
    lines = [
        f"Simple regret (best found - optimum; lower is better), {seeds} seeds x {trials} trials; "
        "'pending' = trials running while each one is asked (pending + 1 workers).",
        f"ratio = median final regret / {baseline}'s median at the same pending; wins (ties) = seeds where "
        f"the engine's final regret is below (equal to) {baseline}'s on the same seed.",
    ]
    rows = []
    for fn in fns:
        for pending in pendings:
            for engine in engines:
                sc = _score(by, engine, fn, pending, baseline)
                if sc is None:
                    continue
                wins = (
                    f"{sc['wins']}/{sc['n']}" + (f" ({sc['ties']} tie)" if sc["ties"] else "") if "wins" in sc else ""
                )
                ratio = f"{sc['ratio']:.2f}" if "ratio" in sc else "1.00 (base)" if engine == baseline else "-"
                lo, hi = sc["iqr"]
                rows.append(
                    [
                        fn,
                        str(pending),
                        engine,
                        _g(sc["median"]),
                        f"{_g(lo)}..{_g(hi)}",
                        ratio,
                        wins,
                        f"{sc['ask'] * 1e3:.0f} ms",
                    ]
                )
            rows.append([""] * 8)
    lines.append(
        table(
            ["problem", "pending", "engine", f"median@{trials}", "IQR", "ratio", f"wins vs {baseline}", "time/trial"],
            rows[:-1],
        )
    )
    lines.append("")
    lines.append(markdown(by, engines, fns, pendings))
    sanity = []
    for fn in fns:
        for pending in pendings:
            b, r = by.get(("wandb-bayes", fn, pending), {}), by.get(("wandb-random", fn, pending), {})
            if b and r:
                w = sum(1 for s in b if s in r and b[s]["regret"][-1] < r[s]["regret"][-1])
                sanity.append(f"{fn} (pending {pending}): W&B bayes beats W&B random on {w}/{len(b)} seeds")
    trap = by.get((TRAP, "branin", pendings[0]), {})
    if trap:
        rnd = by.get(("wandb-random", "branin", pendings[0]), {})
        sanity.append(
            "branin: W&B bayes fed history by field name (summary_metrics=, the pydantic-2 trap): median "
            f"{_g(statistics.median(x['regret'][-1] for x in trap.values()))}"
            + (f" vs W&B random {_g(statistics.median(x['regret'][-1] for x in rnd.values()))}" if rnd else "")
        )
    if parsed:
        sanity.append(
            f"SweepRun(summary_metrics={{'y': 1.0}}) reads as {parsed[0]}; "
            f"SweepRun(summaryMetrics={{'y': 1.0}}) reads as {parsed[1]}"
        )
    if sanity:
        lines.append("")
        lines.append("Sanity check of the W&B driver:")
        lines.extend("  " + s for s in sanity)
    return "\n".join(lines)


_LABELS = {
    "sweepq-auto": "sweepq default (no torch)",
    "sweepq-gp": "sweepq `gp` extra (torch)",
    "sweepq-tpe": "sweepq tpe",
    "optuna-tpe": "Optuna TPE defaults",
    "optuna-gp": "Optuna GP defaults",
    "wandb-bayes": "W&B bayes",
}


def markdown(by: Runs, engines: Sequence[str], fns: Sequence[str], pendings: Sequence[int]) -> str:
    """The README's table: per problem and pending, median regret, ratio to W&B, wins (ties)."""
    shown = [e for e in engines if e in _LABELS]
    head = "| problem | pending | " + " | ".join(_LABELS[e] for e in shown) + " |"
    out = [head, "|" + "---|" * (2 + len(shown))]
    for fn in fns:
        for pending in pendings:
            cells = []
            for engine in shown:
                sc = _score(by, engine, fn, pending)
                if sc is None:
                    cells.append("-")
                elif "wins" in sc:
                    tie = f" +{sc['ties']}t" if sc["ties"] else ""
                    cells.append(f"{_g(sc['median'])} ×{sc['ratio']:.2f}, {sc['wins']}/{sc['n']}{tie}")
                else:
                    cells.append(_g(sc["median"]))
            out.append(f"| {fn} | {pending} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def _raw_runs(path: Path, trials: int) -> list[dict[str, Any]]:
    """The runs stored in a result file's raw JSON, cut to ``trials`` trials (they must have as many)."""
    raw = json.loads(path.read_text().split("Raw (per run: best-so-far regret in trial order):\n", 1)[1])
    runs = []
    for r in raw["runs"]:
        if len(r["regret"]) < trials:
            raise SystemExit(f"{path}: {r['engine']} {r['fn']} seed {r['seed']} has {len(r['regret'])} trials")
        runs.append({**r, "regret": r["regret"][:trials], "seconds": r["seconds"] * trials / len(r["regret"])})
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 seeds x 30 trials")
    ap.add_argument("--seeds", type=int)
    ap.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="seeds first..first+seeds-1: fresh seeds check a variant chosen on seeds 0-9 without selection bias",
    )
    ap.add_argument("--baseline", default="wandb-bayes", help="the engine that wins and ratios are counted against")
    ap.add_argument("--trials", type=int)
    ap.add_argument("--pending", default="1,4", help="running trials at each ask, comma-separated")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--engines", default=",".join(ENGINES), help=f"also: {', '.join(OPTIONAL)}")
    ap.add_argument("--problems", default=",".join(PROBLEMS))
    ap.add_argument("--tag", default="", help="suffix of the result file's name")
    ap.add_argument(
        "--ask-cost", metavar="N,N,...", help="only time one ask after N finished trials (hartmann6), per backend"
    )
    ap.add_argument("--no-trap", action="store_true", help="skip the field-name trap control")
    ap.add_argument(
        "--merge",
        metavar="FILE",
        action="append",
        default=[],
        help="also summarize the runs of an earlier result file (its engines, problems and pending counts that"
        " this run does not redo): W&B's engine is deterministic per seed, so its runs can be reused",
    )
    args = ap.parse_args(argv)
    seeds = args.seeds or (3 if args.quick else 10)
    seed_range = range(args.first_seed, args.first_seed + seeds)
    trials = args.trials or (30 if args.quick else 50)
    engines = [e for e in args.engines.split(",") if e]
    fns = [p for p in args.problems.split(",") if p]
    pendings = [int(p) for p in args.pending.split(",") if p]
    if any(e.startswith("wandb") for e in engines) and not WANDB_PYTHON.exists():
        print(
            f"W&B's engine is not installed: python -m venv {WANDB_PYTHON.parent.parent} && "
            f"{WANDB_PYTHON.parent}/pip install sweeps==0.2.0",
            file=sys.stderr,
        )
        return 2
    import importlib.util

    for engine in ("sweepq-gp", "optuna-gp"):
        if engine in engines and importlib.util.find_spec("torch") is None:
            print(f"torch is not installed: skipping {engine} (pip install -e .[gp])", file=sys.stderr)
            engines.remove(engine)
    rev = (
        subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=BENCH.parent, capture_output=True, text=True, check=False
        ).stdout.strip()
        or "?"
    )
    RESULTS.mkdir(exist_ok=True)
    if args.ask_cost:
        text = (
            f"search_quality --ask-cost @ {rev} ({_dt.datetime.now():%Y-%m-%d %H:%M}, "
            f"{os.cpu_count()} cpus, 1 thread)\n\n" + ask_cost([int(x) for x in args.ask_cost.split(",")])
        )
        print(text)
        path = RESULTS / f"search_quality-ask_cost-{_dt.date.today().isoformat()}.txt"
        path.write_text(text + "\n")
        print(f"\nwrote {path.relative_to(BENCH.parent)}")
        return 0
    for fn in fns:
        problem(fn)  # fail early on an unknown problem or a missing table
    tasks = [(e, fn, s, trials, p) for e in engines for fn in fns for p in pendings for s in seed_range]
    if not args.no_trap and "wandb-bayes" in engines and "branin" in fns:
        tasks += [(TRAP, "branin", s, trials, pendings[0]) for s in seed_range]
    # Slow engines first so the pool ends together.
    cost = {"sweepq-gp": 0, "optuna-gp": 0, "wandb-bayes": 1, TRAP: 1}
    tasks.sort(key=lambda t: (cost.get(t[0], 2), t[1]))
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs, max_tasks_per_child=1) as pool:
        results = list(pool.map(run_one, tasks))
    wall = time.perf_counter() - t0
    done = {(t[0], t[1], t[2], t[4]) for t in tasks}
    for file in args.merge:
        old = _raw_runs(Path(file), trials)
        results += [
            r for r in old if (r["engine"], r["fn"], r["seed"], r["pending"]) not in done and r["seed"] in seed_range
        ]
        engines += [e for e in dict.fromkeys(r["engine"] for r in old) if e not in engines and e != TRAP]
    # Merged W&B runs need no W&B install: the parse check runs only where the engine is installed.
    parsed = wandb_parse_check() if any(e.startswith("wandb") for e in engines) and WANDB_PYTHON.exists() else None
    text = summarize(results, engines, fns, pendings, seeds, trials, parsed, args.baseline)
    import optuna
    import sklearn

    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    head = (
        f"search_quality @ {rev} {'--quick ' if args.quick else ''}({stamp}, "
        f"{platform.python_version()}, {os.cpu_count()} cpus, optuna {optuna.__version__}, "
        f"scikit-learn {sklearn.__version__}, sweeps 0.2.0, wall {wall:.0f} s, {args.jobs} processes, "
        f"5-min load average {os.getloadavg()[1]:.1f})"
    )
    out = head + "\n\n" + text
    print(out)
    tag = ("-quick" if args.quick else "") + (f"-{args.tag}" if args.tag else "")
    path = RESULTS / f"search_quality-{_dt.date.today().isoformat()}{tag}.txt"
    raw = {
        "command": " ".join(["python", "benchmarks/search_quality.py", *(argv or sys.argv[1:])]),
        "seeds": seeds,
        "first_seed": args.first_seed,
        "trials": trials,
        "wall_s": wall,
        "runs": [{k: r[k] for k in ("engine", "fn", "seed", "pending", "seconds", "regret")} for r in results],
    }
    path.write_text(
        out + "\n\nRaw (per run: best-so-far regret in trial order):\n" + json.dumps(raw, default=float) + "\n"
    )
    print(f"\nwrote {path.relative_to(BENCH.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
