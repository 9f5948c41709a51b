"""A W&B sweep script of the most common shape: argparse flags, wandb.init(config=args),
define_metric, a Table, run.summary, metrics named `val/loss`. Unchanged W&B code, except that it
also writes what it saw to $WANDB_TEST_OUT (for the test's assertions)."""

import argparse
import json
import os
import time

import wandb

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.5)
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--slope", type=float, default=1.0)
parser.add_argument("--delay", type=float, default=0.0)
args = parser.parse_args()

run = wandb.init(project="demo", config=args)
wandb.define_metric("val/loss", summary="min")
table = wandb.Table(columns=["epoch", "loss"])
for epoch in range(wandb.config.epochs):
    loss = 10 - wandb.config.slope * epoch
    table.add_data(epoch, loss)
    wandb.log({"val/loss": loss, "epoch": epoch})
    time.sleep(wandb.config.delay)
wandb.log({"table": table})
run.summary["best_epoch"] = wandb.config.epochs - 1
out = os.environ.get("WANDB_TEST_OUT")
if out:
    seen = {"config": dict(wandb.config), "run_id": run.id, "mode": os.environ.get("WANDB_MODE"), "dir": run.dir}
    with open(os.path.join(out, f"{os.environ['SWEEPQ_TRIAL']}.json"), "w") as f:
        json.dump(seen, f, default=str)
wandb.finish()
