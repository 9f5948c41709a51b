"""An SDK program that survives SIGTERM long enough to see the stop the way a user would:
`run.should_stop` turns True and the next `sweepq.log()` raises `sweepq.Stopped`. What it saw
goes to $SWEEPQ_TEST_OUT/stop-<trial>.json."""

import json
import os
import signal
import time

import sweepq

got_term = []
signal.signal(signal.SIGTERM, lambda *_: got_term.append(time.time()))
run = sweepq.init()
out = os.path.join(os.environ["SWEEPQ_TEST_OUT"], f"stop-{os.environ['SWEEPQ_TRIAL']}.json")
seen = {"should_stop_before": run.should_stop, "params": dict(run.config)}
step = 0
try:
    while step < 600:
        step += 1
        if got_term or run.should_stop:
            time.sleep(0.3)  # past should_stop's 0.2 s poll interval
            seen["should_stop"] = run.should_stop
        sweepq.log({"loss": 1.0 / step})
        time.sleep(0.05)
    seen["error"] = "never stopped"
except sweepq.Stopped as exc:
    seen["stopped"] = str(exc)
    seen["should_stop_after"] = run.should_stop
seen["sigterm"] = bool(got_term)
with open(out + ".tmp", "w") as f:
    json.dump(seen, f)
os.replace(out + ".tmp", out)
