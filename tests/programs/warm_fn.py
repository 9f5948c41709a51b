"""Function-mode trainers for tests/test_warm.py: they record which process ran them and what
module state they found, so a test can tell one reused work horse from a fresh one per trial."""

import json
import os
import time

import sweepq

TRIALS_SEEN = 0  # module state: kept across trials only when the horse is reused


def _record(**extra: object) -> None:
    out = os.environ.get("SWEEPQ_TEST_OUT")
    if out:
        path = os.path.join(out, f"fn-{os.environ['SWEEPQ_TRIAL']}.json")
        with open(path + ".tmp", "w") as f:
            json.dump({"pid": os.getpid(), "seen": TRIALS_SEEN, **extra}, f)
        os.replace(path + ".tmp", path)


def count() -> None:
    global TRIALS_SEEN
    TRIALS_SEEN += 1
    run = sweepq.init()
    sweepq.log({"loss": float(run.config["i"])})
    _record()


def looper(config: sweepq.Config) -> None:
    """`def train(config)`: logs every 50 ms until stopped (`mode: quick`: once)."""
    global TRIALS_SEEN
    TRIALS_SEEN += 1
    _record(mode=config["mode"])
    while True:
        sweepq.log({"loss": 1.0})
        if config["mode"] == "quick":
            return
        time.sleep(0.05)


def stubborn(config: sweepq.Config) -> None:
    """Swallows every `Stopped` and keeps computing (`mode: quick`: returns at once)."""
    global TRIALS_SEEN
    TRIALS_SEEN += 1
    sweepq.log({"loss": 1.0})
    _record(mode=config["mode"])
    if config["mode"] == "quick":
        return
    while True:
        try:
            time.sleep(0.05)
        except sweepq.Stopped:
            pass
