"""A learning curve decided by `slope`: loss_t = 10 - slope * t for t = 1..steps (stdout
protocol). Bigger slope, lower loss at every step; `delay` seconds between steps.

Parameters come as `--k=v` flags, or as one JSON object (`${args_json}`) whose `run` group
holds them.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _args import parse  # noqa: E402

if len(sys.argv) == 2 and sys.argv[1].startswith("{"):
    data = json.loads(sys.argv[1])
    args = {**data, **data.get("run", {})}
else:
    args = parse(sys.argv[1:])
slope, steps, delay = float(args["slope"]), int(args.get("steps", 8)), float(args.get("delay", 0.3))
for t in range(1, steps + 1):
    time.sleep(delay)
    print(f"step={t} loss={10 - slope * t}", flush=True)
