"""Function-mode trainers (`program: tests.programs.fn_train:train`): they run inside the worker's
job process (or the notebook agent), with the trial's parameters from `sweepq.init().config`."""

import os

import sweepq


def train() -> None:
    run = sweepq.init()
    x, y = float(run.config["x"]), float(run.config["y"])
    for epoch in range(3):
        sweepq.log({"epoch": epoch, "loss": (x - 1) ** 2 + (y + 2) ** 2 + (2 - epoch)})
    out = os.environ.get("SWEEPQ_TEST_OUT")
    if out:
        with open(os.path.join(out, f"fn-{os.environ['SWEEPQ_TRIAL']}.txt"), "w") as f:
            f.write(f"{os.getpid()} {x} {y}")
