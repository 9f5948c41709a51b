"""An SDK program that survives SIGTERM long enough to see a stop the way a user would:
`run.should_stop` turns True, and the next `sweepq.log()` raises `sweepq.Stopped`.

Logs loss = 10 - slope * t for t = 1..steps, `delay` seconds apart (params from run.config, or its `run` group).
What it saw goes to $SWEEPQ_TEST_OUT/stop-<trial>.json.
"""

import json
import os
import signal
import time

import sweepq

got_term: list[float] = []
signal.signal(signal.SIGTERM, lambda *_: got_term.append(time.time()))
run = sweepq.init()
cfg = run.config.get("run", run.config)
slope, steps, delay = float(cfg["slope"]), int(cfg["steps"]), float(cfg["delay"])
out = os.path.join(os.environ["SWEEPQ_TEST_OUT"], f"stop-{os.environ['SWEEPQ_TRIAL']}.json")
seen: dict = {"should_stop_at_start": run.should_stop}
try:
    for t in range(1, steps + 1):
        sweepq.log({"loss": 10 - slope * t, "t": t})
        end = time.monotonic() + delay
        while time.monotonic() < end and not got_term:
            time.sleep(0.01)
        if got_term and "should_stop" not in seen:
            seen["should_stop"] = run.should_stop
            seen["logged_before_stop"] = t
    seen["completed"] = True
except sweepq.Stopped as exc:
    seen["stopped"] = str(exc)
seen["sigterm"] = bool(got_term)
with open(out + ".tmp", "w") as f:
    json.dump(seen, f)
os.replace(out + ".tmp", out)
