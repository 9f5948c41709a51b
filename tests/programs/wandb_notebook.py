"""W&B's notebook shape with the one-line change (`import sweepq as wandb`): wandb.sweep +
wandb.agent(function=...) in one process, unchanged otherwise (SWEEPQ_REDIS_URL names the server). argv: OUT_FILE."""

import json
import sys

import sweepq as wandb

sweep_config = {
    "method": "grid",
    "metric": {"name": "val/loss", "goal": "minimize"},
    "parameters": {"lr": {"values": [0.1, 0.3]}, "layers": {"parameters": {"n": {"value": 2}}}},
}
seen = []


def train() -> None:
    run = wandb.init(config={"lr": 1.0, "epochs": 2})
    wandb.define_metric("val/loss", summary="min")
    for epoch in range(wandb.config.epochs):
        wandb.log({"val/loss": wandb.config.lr / (epoch + 1), "hist": wandb.Histogram([1, 2])})
    seen.append({"lr": wandb.config.lr, "n": wandb.config.layers.n, "summary": dict(run.summary)})
    wandb.finish()


sweep_id = wandb.sweep(sweep=sweep_config, project="demo", entity="me")
ran = wandb.agent(sweep_id, function=train, count=2, project="demo")
with open(sys.argv[1], "w") as f:
    json.dump({"sweep_id": sweep_id, "ran": ran, "seen": seen}, f)
