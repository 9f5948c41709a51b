"""A realistic-shaped trial for benchmarks/utilization.py: imports torch (seconds, paid once per
warm horse, once per trial when cold), then trains a small MLP on CPU for `seconds` seconds in
`epochs` epochs, logging `loss` each epoch (so hyperband can prune it). It appends what it did to
$SWEEPQ_BENCH_OUT/trials.jsonl: when it started, when training started and ended, and its pid.

Function mode: `program: torch_train:train` (`def train(config)`); subprocess mode:
`python torch_train.py --lr=... --seconds=...`."""

import json
import os
import sys
import time

T_START = time.time()
import torch  # noqa: E402

import sweepq  # noqa: E402

_DATA: dict[str, torch.Tensor] = {}  # kept across trials by a warm horse, as a user's cache would be


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    if not _DATA:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(2048, 32, generator=g)
        _DATA["x"], _DATA["y"] = x, (x[:, :4].sum(1, keepdim=True) > 0).float()
    return _DATA["x"], _DATA["y"]


def train(config: sweepq.Config) -> None:
    started = time.time()
    torch.set_num_threads(1)
    x, y = _data()
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
    opt = torch.optim.SGD(model.parameters(), lr=float(config["lr"]))
    epochs, seconds = int(config["epochs"]), float(config["seconds"])
    t0 = time.time()
    loss = torch.tensor(0.0)
    stopped = False
    try:
        for epoch in range(epochs):
            until = t0 + seconds * (epoch + 1) / epochs
            while time.time() < until:
                opt.zero_grad()
                loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
                loss.backward()
                opt.step()
            _record(started, t0, stopped=False)  # before the log that may stop it (Ray never returns then)
            sweepq.log({"loss": float(loss), "epoch": epoch})
    except sweepq.Stopped:
        stopped = True
        raise
    finally:
        _record(started, t0, stopped=stopped)


def _record(called: float, train_start: float, *, stopped: bool) -> None:
    """Append where the trial is to $SWEEPQ_BENCH_OUT/trials.jsonl (the last row per trial wins)."""
    out = os.environ.get("SWEEPQ_BENCH_OUT")
    if out:
        row = {
            "trial": int(os.environ.get("SWEEPQ_TRIAL", -1)),
            "pid": os.getpid(),
            "module_loaded": T_START,
            "called": called,
            "train_start": train_start,
            "train_end": time.time(),
            "stopped": stopped,
        }
        with open(os.path.join(out, "trials.jsonl"), "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
    started = time.time()
    train(sweepq.init().config)
