"""Regenerate tests/golden/hyperband.json from W&B's own engine (the `sweeps` package).

W&B's engine pins pydantic/jsonschema versions we do not want in sweepq's environment, so run this
from a scratch virtual environment:

    python -m venv /tmp/wb && /tmp/wb/bin/pip install sweeps
    /tmp/wb/bin/python tests/golden/make_hyperband.py

Each row is a random sweep config and runs (W&B-style history rows with the metric sometimes
missing, non-numeric or non-finite) plus the names W&B's ``hyperband_stop_runs`` stops.
"""

from __future__ import annotations

import json
import math
import random
import warnings
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("hyperband.json")
STATES = ["running", "running", "running", "finished", "failed", "crashed", "killed", "pending"]
N_CASES = 300
SEED = 20240611


def _value(rng: random.Random, style: str) -> Any:
    roll = rng.random()
    if roll < 0.03:
        return rng.choice([math.nan, math.inf, -math.inf, "nan", None, True, False, "0.1"])
    if style == "ties":
        return rng.randint(0, 4)
    if style == "int-float":
        return rng.choice([1, 2, 2.0, 3, 0.5])
    return round(rng.uniform(-1.0, 2.0), rng.choice([1, 2, 3]))


def _early_terminate(rng: random.Random) -> dict[str, Any]:
    et: dict[str, Any] = {"type": "hyperband"}
    eta = rng.choice([None, 2, 3, 3, 4, 1.5, 2.5, 10, 49])
    form = rng.choice(["max", "max", "min", "min", "both"])
    if form in ("max", "both"):
        et["max_iter"] = rng.choice([3, 5, 9, 10, 27, 30, 81, 100])
        et["s"] = rng.choice([1, 2, 3, 4, 5])
    if form in ("min", "both"):
        et["min_iter"] = rng.choice([1, 1, 2, 3, 5])
    if eta is not None:
        et["eta"] = eta
    strict = rng.choice([None, True, False])
    if strict is not None:
        et["strict"] = strict
    return et


def _case(rng: random.Random, metric: str) -> dict[str, Any]:
    config: dict[str, Any] = {
        "method": "random",
        "metric": {"name": metric},
        "early_terminate": _early_terminate(rng),
        "parameters": {"x": {"values": [1, 2]}},
    }
    goal = rng.choice([None, "minimize", "maximize"])
    if goal is not None:
        config["metric"]["goal"] = goal
    style = rng.choice(["floats", "ties", "int-float"])
    runs = []
    for i in range(rng.choice([1, 1, 2, 3, 5, 8, 13])):
        rows: list[dict[str, Any]] = []
        for step in range(rng.choice([0, 1, 2, 3, 4, 6, 9, 12, 20])):
            row: dict[str, Any] = {"_step": step} if step % 5 == 0 else {}
            if rng.random() > 0.1:
                row[metric] = _value(rng, style)
            rows.append(row)
        runs.append({"name": f"r{i}", "state": rng.choice(STATES), "history": rows})
    return {"config": config, "runs": runs}


def _edge_cases() -> list[dict[str, Any]]:
    """Hand-made rows: float rounding of int((1/eta) * n), W&B's docstring example, ties."""

    def cfg(et: dict[str, Any], goal: str = "minimize") -> dict[str, Any]:
        return {
            "method": "random",
            "metric": {"name": "loss", "goal": goal},
            "early_terminate": {"type": "hyperband", **et},
            "parameters": {"x": {"values": [1, 2]}},
        }

    def runs(*specs: tuple[str, list[Any]]) -> list[dict[str, Any]]:
        return [
            {"name": f"r{i}", "state": state, "history": [{"loss": v} for v in hist]}
            for i, (state, hist) in enumerate(specs)
        ]

    return [
        {"config": cfg({"min_iter": 1, "eta": 49}), "runs": runs(*[("running", [float(i)]) for i in range(49)])},
        {
            "config": cfg({"min_iter": 1, "eta": 98}, "maximize"),
            "runs": runs(*[("running", [float(i), float(i)]) for i in range(98)]),
        },
        {
            "config": cfg({"max_iter": 5, "eta": 2, "s": 2}),
            "runs": runs(
                ("finished", [10, 9]),
                ("running", [10, 10]),
                ("running", [10, 8, 8]),
                ("running", [10, 7, 7]),
                ("finished", [10, 6, 6]),
            ),
        },
        {
            "config": cfg({"max_iter": 5, "eta": 2, "s": 2, "strict": False}),
            "runs": runs(
                ("finished", [10, 9]),
                ("running", [10, 10]),
                ("running", [10, 8, 8]),
                ("running", [10, 7, 7]),
                ("finished", [10, 6, 6]),
            ),
        },
        {"config": cfg({"min_iter": 1}), "runs": runs(("running", [5.0, 9.0, 1.0]))},
        {"config": cfg({"min_iter": 2}), "runs": runs(*[("running", [1.0, 2.0, 3.0]) for _ in range(7)])},
    ]


def main() -> None:
    warnings.simplefilter("ignore")
    from sweeps.hyperband_stopping import hyperband_stop_runs
    from sweeps.run import RunState, SweepRun

    rng = random.Random(SEED)
    rows = []
    cases = _edge_cases()
    while len(rows) < N_CASES:
        case = cases.pop(0) if cases else _case(rng, rng.choice(["loss", "val/acc"]))
        wb_runs = [SweepRun(name=r["name"], state=RunState(r["state"]), history=r["history"]) for r in case["runs"]]
        try:
            stopped = [r.name for r in hyperband_stop_runs(wb_runs, case["config"])]
        except ValueError:  # no bands: our config layer rejects these too
            continue
        rows.append({**case, "stop": stopped})
    text = json.dumps({"source": "wandb sweeps hyperband_stop_runs", "cases": rows}, indent=None)
    OUT.write_text(text.replace('{"config"', '\n{"config"') + "\n")
    print(f"wrote {len(rows)} cases to {OUT}")


if __name__ == "__main__":
    main()
