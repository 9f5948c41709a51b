"""A W&B sweep script with no arguments at all: its defaults live in wandb.init(config=...), the
sweep's values (a nested `optimizer` group) reach it only through wandb.config, as under W&B's
agent. Logs a nested dict and a `val/loss` key; writes what it saw to $WANDB_TEST_OUT."""

import json
import os

import wandb

with wandb.init(config={"optimizer": {"name": "sgd", "lr": 0.5}, "epochs": 2}) as run:
    cfg = wandb.config
    for epoch in range(cfg["epochs"]):
        loss = cfg["optimizer"]["lr"] * (epoch + 1)
        wandb.log({"train": {"loss": loss}}, commit=False)
        wandb.log({"val/loss": loss}, step=epoch)
    out = os.environ.get("WANDB_TEST_OUT")
    if out:
        with open(os.path.join(out, f"{os.environ['SWEEPQ_TRIAL']}.json"), "w") as f:
            json.dump({"config": dict(cfg), "run_id": run.id}, f, default=str)
