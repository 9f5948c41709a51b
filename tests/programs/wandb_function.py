"""A W&B notebook with the real wandb package, where only the sweep and agent calls go to
sweepq (`wandb.sweep`/`wandb.agent` need W&B's server): the function's `wandb.init`/`wandb.log`
are unchanged and are connected in-process. argv: OUT_FILE; SWEEPQ_REDIS_URL names the server."""

import json
import sys

import wandb

import sweepq

seen = []


def train() -> None:
    with wandb.init(config={"lr": 1.0, "epochs": 3}) as run:
        for epoch in range(wandb.config.epochs):
            wandb.log({"val/loss": wandb.config.lr * (3 - epoch)})
        seen.append({"lr": wandb.config.lr, "id": run.id})


sweep_id = sweepq.sweep(
    {"method": "grid", "metric": {"name": "val/loss"}, "parameters": {"lr": {"values": [0.1, 0.2]}}}
)
ran = sweepq.agent(sweep_id, function=train, count=2)
with open(sys.argv[1], "w") as f:
    json.dump({"sweep_id": sweep_id, "ran": ran, "seen": seen}, f)
