"""Function mode, as in W&B's notebook tutorial: `sweepq.sweep` + `sweepq.agent`.

Run it with `python notebook.py`: with no SWEEPQ_REDIS_URL it uses the embedded server under
./.sweepq/ and runs the trials in this process, one after another.
"""

import math

import sweepq

sweep_config = {
    "method": "random",
    "metric": {"name": "loss", "goal": "minimize"},
    "parameters": {
        "optimizer": {
            "parameters": {
                "name": {"values": ["adam", "sgd"]},
                "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
            }
        },
        "width": {"values": [32, 64, 128]},
    },
}


def train() -> None:
    run = sweepq.init()
    cfg = run.config
    for epoch in range(5):
        loss = abs(math.log10(cfg.optimizer.lr) + 2) + 32 / cfg.width + 1 / (epoch + 1)
        sweepq.log({"epoch": epoch, "loss": loss})
    run.finish()


if __name__ == "__main__":
    sweep_id = sweepq.sweep(sweep_config)
    print("sweep", sweep_id)
    print("ran", sweepq.agent(sweep_id, function=train, count=5), "trials")
