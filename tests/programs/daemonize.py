"""Leaves a daemon behind: a double fork whose grandchild calls setsid() (so it is out of the
trial's process group) and keeps the inherited stdout open. Writes {"program", "parent",
"daemon"} pids to $SWEEPQ_TEST_OUT/daemon-<trial>.json, logs loss=1, then exits (or, with
`--stay=1`, sleeps until killed)."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _args import parse  # noqa: E402

args = parse(sys.argv[1:])
read_end, write_end = os.pipe()
if os.fork() == 0:  # the intermediate child
    os.setsid()
    if os.fork() == 0:  # the daemon: out of the group, orphaned once its parent exits
        os.close(read_end)
        os.write(write_end, str(os.getpid()).encode())
        os.close(write_end)
        while True:
            time.sleep(1)
    os._exit(0)
os.close(write_end)
daemon = int(os.read(read_end, 32))
path = os.path.join(os.environ["SWEEPQ_TEST_OUT"], f"daemon-{os.environ['SWEEPQ_TRIAL']}.json")
with open(path + ".tmp", "w") as f:
    json.dump({"program": os.getpid(), "parent": os.getppid(), "daemon": daemon}, f)
os.replace(path + ".tmp", path)
print("loss=1.0", flush=True)
if args.get("stay"):
    while True:
        time.sleep(0.2)
