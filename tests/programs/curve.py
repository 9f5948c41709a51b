"""A learning curve decided by `--slope`: loss_t = 10 - slope * t for t = 1..steps (stdout
protocol). Bigger slope, lower loss at every step; `--delay` seconds between steps."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _args import parse  # noqa: E402

args = parse(sys.argv[1:])
slope, steps, delay = float(args["slope"]), int(args.get("steps", 8)), float(args.get("delay", 0.3))
for t in range(1, steps + 1):
    time.sleep(delay)
    print(f"step={t} loss={10 - slope * t}", flush=True)
