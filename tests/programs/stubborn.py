"""Ignores SIGTERM and forks two children that ignore it too; writes every pid to
$SWEEPQ_TEST_OUT/pids-<trial>.json, logs the metric, then sleeps forever."""

import json
import os
import signal
import time

signal.signal(signal.SIGTERM, signal.SIG_IGN)
pids = [os.getpid()]
for _ in range(2):
    pid = os.fork()
    if pid == 0:  # child: inherits SIG_IGN, sleeps forever
        while True:
            time.sleep(1)
    pids.append(pid)
path = os.path.join(os.environ["SWEEPQ_TEST_OUT"], f"pids-{os.environ['SWEEPQ_TRIAL']}.json")
with open(path + ".tmp", "w") as f:
    json.dump(pids, f)
os.replace(path + ".tmp", path)
print("loss=1.0", flush=True)
while True:
    time.sleep(0.2)
