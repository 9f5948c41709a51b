"""Quickstart trainer: a scikit-learn MLP on the 8x8 digits, one epoch per `partial_fit`.

Runs by hand (`python train.py --lr 0.01`) or as a sweep trial (`sweepq plan sweep.yaml`): inside a
trial `sweepq.init()` fills `run.config` with the trial's parameters and `sweepq.log()` sends
each epoch's metrics to the sweep, where the pruner may stop a losing trial (SIGTERM).
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

import sweepq


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--hidden", type=int, default=64, help="units in the hidden layer")
    p.add_argument("--alpha", type=float, default=1e-4, help="L2 penalty")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=27)
    p.add_argument("--seed", type=int, default=0, help="weights init and batch order")
    return p.parse_args(argv)


def load_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """1,347 training and 450 validation images (a fixed, stratified split), standardized."""
    x, y = load_digits(return_X_y=True)
    x_tr, x_val, y_tr, y_val = train_test_split(x, y, test_size=0.25, stratify=y, random_state=seed)
    scaler = StandardScaler().fit(x_tr)
    return scaler.transform(x_tr), scaler.transform(x_val), y_tr, y_val


def make_model(cfg: Mapping[str, Any]) -> MLPClassifier:
    return MLPClassifier(
        hidden_layer_sizes=(int(cfg["hidden"]),),
        alpha=float(cfg["alpha"]),
        learning_rate_init=float(cfg["lr"]),
        batch_size=int(cfg["batch_size"]),
        random_state=int(cfg.get("seed", 0)),
    )


def train_epochs(cfg: Mapping[str, Any]) -> Iterator[dict[str, float]]:
    """Train for cfg["epochs"] epochs, yielding each epoch's validation metrics."""
    x_tr, x_val, y_tr, y_val = load_data()
    classes = np.unique(y_tr)
    model = make_model(cfg)
    for epoch in range(1, int(cfg["epochs"]) + 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.partial_fit(x_tr, y_tr, classes=classes)  # one pass over the training set
        proba = model.predict_proba(x_val)
        yield {
            "epoch": epoch,
            "val_acc": float(accuracy_score(y_val, classes[proba.argmax(axis=1)])),
            "val_loss": float(log_loss(y_val, proba, labels=classes)),
        }


def main(argv: list[str] | None = None) -> float:
    args = parse_args(argv)
    run = sweepq.init(config=vars(args))  # in a sweep, the trial's parameters win
    best = 0.0
    for row in train_epochs(run.config):
        best = max(best, row["val_acc"])
        sweepq.log(row)  # a pruned trial gets SIGTERM soon after the log() that lost
    run.summary["best_val_acc"] = best
    sweepq.finish()
    print(f"best val_acc {best:.4f} after {run.config['epochs']} epochs")
    return best


if __name__ == "__main__":
    main()
