"""Regenerate space.json from W&B's `sweeps` engine (not a test; needs `pip install sweeps`).

    python -m venv /tmp/wb && /tmp/wb/bin/pip install sweeps pyyaml
    /tmp/wb/bin/python tests/golden/make_space.py > tests/golden/space.json

Rows: ppf values of every distribution at fixed u, and grid points of a few configs, exactly as
W&B's HyperParameter.ppf and grid_search_next_runs compute them.
"""

import json

import numpy as np
from sweeps import grid_search
from sweeps.params import HyperParameter

SPECS = [
    {"distribution": "constant", "value": "x"},
    {"values": [1, "a", [64, 32], None, True]},
    {"values": ["a", "b", "c"], "probabilities": [0.2, 0.5, 0.3]},
    {"min": -3, "max": 7},
    {"min": 0.5, "max": 2},
    {"distribution": "uniform", "min": -1, "max": 3},
    {"distribution": "q_uniform", "min": 0, "max": 10},
    {"distribution": "q_uniform", "min": 0, "max": 10, "q": 3},
    {"distribution": "q_uniform", "min": 0.0, "max": 1.0, "q": 0.1},
    {"distribution": "log_uniform", "min": -9.2, "max": -2.3},
    {"distribution": "log_uniform_values", "min": 1e-4, "max": 0.1},
    {"distribution": "q_log_uniform", "min": 0, "max": 6, "q": 2},
    {"distribution": "q_log_uniform_values", "min": 32, "max": 256, "q": 8},
    {"distribution": "q_log_uniform_values", "min": 1e-4, "max": 1e-1, "q": 1e-4},
    {"distribution": "inv_log_uniform", "min": 1, "max": 5},
    {"distribution": "inv_log_uniform_values", "min": 0.01, "max": 10},
    {"distribution": "normal"},
    {"distribution": "normal", "mu": 5, "sigma": 2.5},
    {"distribution": "q_normal", "mu": 10, "sigma": 4, "q": 2},
    {"distribution": "q_normal", "mu": 0, "sigma": 1, "q": 0.5},
    {"distribution": "log_normal", "mu": 1, "sigma": 0.5},
    {"distribution": "q_log_normal", "mu": 3, "sigma": 1, "q": 5},
    {"distribution": "beta", "a": 2, "b": 5},
    {"distribution": "beta", "a": 0.5, "b": 0.5},
    {"distribution": "q_beta", "a": 2, "b": 2, "q": 0.25},
]

GRIDS = [
    {"method": "grid", "parameters": {"b": {"values": [1, 2]}, "a": {"values": ["x", "y", "z"]}, "c": {"value": 7}}},
    {
        "method": "grid",
        "parameters": {"n": {"min": 1, "max": 4}, "q": {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.25}},
    },
    {
        "method": "grid",
        "parameters": {
            "q": {"distribution": "q_uniform", "min": 0, "max": 10, "q": 3},
            "m": {"values": [True, 1, 1.0, 3e6, 3000000]},
        },
    },
    {
        "method": "grid",
        "parameters": {
            "opt": {"parameters": {"lr": {"values": [0.1, 0.01]}, "name": {"value": "adam"}}},
            "layers": {"values": [[64, 32], [128]]},
        },
    },
]


def plain(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


def main():
    rng = np.random.default_rng(20240601)
    us = [0.5, 1e-9, 0.999999, 1 / 3, 2 / 3, *rng.random(40).tolist()]
    ppf = []
    for spec in SPECS:
        hp = HyperParameter("p", dict(spec))
        ppf.append({"spec": spec, "u": us, "values": [plain(hp.ppf(u)) for u in us]})
    grids = []
    for config in GRIDS:
        runs, points = [], []
        while True:
            (run,) = grid_search.grid_search_next_runs(runs, config)
            if run is None:
                break
            runs.append(run)
            points.append({k: v["value"] for k, v in run.config.items()})
        grids.append({"config": config, "points": points})
    print(json.dumps({"ppf": ppf, "grid": grids}, indent=1))


main()
