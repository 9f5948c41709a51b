"""A small real sweep for the report tests, run in notebook mode (planner, pruner and trials in
this process, on the test's Redis): a log-distributed, a categorical, an integer and a constant
parameter inside a nested group, hyperband pruning, and a metric whose best depends on lr."""

from __future__ import annotations

import math
import time
from typing import Any

import sweepq

CONFIG: dict[str, Any] = {
    "name": "report-test",
    "method": "random",
    "metric": {"name": "loss", "goal": "minimize"},
    "run_cap": 12,
    "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 2},
    "parameters": {
        "opt": {
            "parameters": {
                "lr": {"distribution": "log_uniform_values", "min": 0.0001, "max": 0.1},
                "name": {"values": ["adam", "sgd"]},
            }
        },
        "width": {"values": [8, 16, 32]},
        "depth": {"distribution": "int_uniform", "min": 1, "max": 4},
        "epochs": {"value": 6},
    },
}


def train() -> None:
    run = sweepq.init()
    lr = run.config.opt.lr
    for step in range(run.config.epochs):
        penalty = 0.3 if run.config.opt.name == "sgd" else 0.0
        sweepq.log({"loss": abs(math.log10(lr) + 2.5) + penalty + 1.0 / (step + 1) + run.config.depth / 50})
        # An epoch takes time, as in training: six logs in a millisecond end (and are recorded)
        # before the pruner's decision on the second can arrive, and nothing is ever pruned.
        time.sleep(0.03)


def make_sweep(redis_url: str, count: int = 12, config: dict[str, Any] | None = None) -> str:
    sid = sweepq.sweep(config or CONFIG, redis=redis_url, seed=7)  # fixed: the importance assertions need it
    sweepq.agent(sid, function=train, count=count, redis=redis_url)
    return sid
