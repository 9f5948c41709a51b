"""Fast stdout-protocol trainer: prints `loss=(x-1)^2 + (y+2)^2` (no sweepq import).

Optional `--sleep=S` keeps the trial running S seconds, so several workers overlap.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _args import parse  # noqa: E402

args = parse(sys.argv[1:])
x, y = float(args.get("x", 0)), float(args.get("y", 0))
time.sleep(float(args.get("sleep", 0)))
print(f"step=1 loss={(x - 1) ** 2 + (y + 2) ** 2}", flush=True)
