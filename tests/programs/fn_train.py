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


def hang() -> None:
    """Logs once, then computes forever without logging again (so it never sees `Stopped`);
    with `mode: quick` it ends at once instead."""
    import time

    run = sweepq.init()
    sweepq.log({"loss": 1.0})
    out = os.environ.get("SWEEPQ_TEST_OUT")
    if out:
        with open(os.path.join(out, f"hang-{os.environ['SWEEPQ_TRIAL']}.pid"), "w") as f:
            f.write(str(os.getpid()))
    if run.config["mode"] == "quick":
        return
    while True:
        time.sleep(0.05)
