"""Real tabular benchmark problems: every point of a small W&B ``values`` grid, trained once.

A search benchmark on a real model should not train models while it runs (10 seeds x 50 trials
x every engine), so each table is the full grid evaluated once, with fixed data splits and
``random_state`` so it is reproducible, and cached as JSON next to this file
(``benchmarks/tables/<name>.json``). A "trial" of the benchmark is then a lookup.

* ``digits_mlp``: scikit-learn's MLPClassifier on the bundled digits data (1,797 8x8 images),
  672 points: hidden units x alpha x learning_rate_init x batch_size; metric: validation error
  on a fixed 40 % split, 30 epochs.
* ``cancer_gb``: GradientBoostingClassifier on the bundled breast-cancer data (569 rows), 768
  points: n_estimators x learning_rate x max_depth x subsample x min_samples_leaf; metric:
  3-fold cross-validated error (fixed folds).

    python benchmarks/tables.py            # builds what is missing (~10 min on 1 core)
    python benchmarks/tables.py --force    # rebuilds both
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

TABLES = Path(__file__).resolve().parent / "tables"

GRIDS: dict[str, dict[str, list[Any]]] = {
    "digits_mlp": {
        "hidden": [16, 32, 64, 128],
        "alpha": [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0],
        "learning_rate_init": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1],
        "batch_size": [32, 64, 128, 256],
    },
    "cancer_gb": {
        "n_estimators": [25, 50, 100, 200],
        "learning_rate": [0.01, 0.03, 0.1, 0.3],
        "max_depth": [1, 2, 3, 5],
        "subsample": [0.5, 0.75, 1.0],
        "min_samples_leaf": [1, 4, 16, 32],
    },
}


def _digits_mlp() -> Callable[[dict[str, Any]], float]:
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    x, y = load_digits(return_X_y=True)
    xt, xv, yt, yv = train_test_split(x, y, test_size=0.4, random_state=0, stratify=y)
    scaler = StandardScaler().fit(xt)
    xt, xv = scaler.transform(xt), scaler.transform(xv)

    def error(p: dict[str, Any]) -> float:
        model = MLPClassifier(
            hidden_layer_sizes=(p["hidden"],),
            alpha=p["alpha"],
            learning_rate_init=p["learning_rate_init"],
            batch_size=p["batch_size"],
            max_iter=30,
            random_state=0,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(xt, yt)
        return float(1.0 - model.score(xv, yv))

    return error


def _cancer_gb() -> Callable[[dict[str, Any]], float]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    x, y = load_breast_cancer(return_X_y=True)
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)

    def error(p: dict[str, Any]) -> float:
        model = GradientBoostingClassifier(random_state=0, **p)
        return float(1.0 - cross_val_score(model, x, y, cv=folds).mean())

    return error


BUILDERS = {"digits_mlp": _digits_mlp, "cancer_gb": _cancer_gb}


def build(name: str) -> Path:
    grid = GRIDS[name]
    f = BUILDERS[name]()
    rows = []
    t0 = time.perf_counter()
    for combo in itertools.product(*grid.values()):
        p = dict(zip(grid, combo, strict=True))
        rows.append([*combo, f(p)])
    TABLES.mkdir(exist_ok=True)
    path = TABLES / f"{name}.json"
    import sklearn

    doc = {
        "name": name,
        "parameters": grid,
        "metric": "error (minimize)",
        "sklearn": sklearn.__version__,
        "build_seconds": round(time.perf_counter() - t0, 1),
        "rows": rows,
    }
    path.write_text(json.dumps(doc) + "\n")
    return path


def load(name: str) -> tuple[dict[str, list[Any]], dict[tuple[Any, ...], float]]:
    """The grid and a lookup from a point (values in grid order) to its metric."""
    path = TABLES / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: python benchmarks/tables.py")
    doc = json.loads(path.read_text())
    grid = doc["parameters"]
    return grid, {tuple(r[:-1]): float(r[-1]) for r in doc["rows"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--force", action="store_true")
    ap.add_argument("names", nargs="*", default=list(GRIDS))
    args = ap.parse_args()
    for name in args.names:
        if args.force or not (TABLES / f"{name}.json").exists():
            t = time.perf_counter()
            path = build(name)
            print(f"{name}: {path} in {time.perf_counter() - t:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
