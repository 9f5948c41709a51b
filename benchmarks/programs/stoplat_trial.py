"""A trial for benchmarks/stop_latency.py: even trials log a good score and end; odd trials
wait `delay` s (so good scores are already known), log a losing score, and wait for SIGTERM.

The loser writes {"t_log": time before its losing log(), "t_sig": time its SIGTERM handler ran}
to OUT/<i>.json; time.time() because the two ends are in different processes.
"""

import argparse
import json
import os
import signal
import time

import sweepq

parser = argparse.ArgumentParser()
parser.add_argument("--i", type=int, required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--delay", type=float, default=0.5)
parser.add_argument("--wait", type=float, default=10.0)
args = parser.parse_args()

t_log = None


def _on_term(_signum, _frame):
    t_sig = time.time()
    with open(os.path.join(args.out, f"{args.i}.json"), "w") as f:
        json.dump({"i": args.i, "t_log": t_log, "t_sig": t_sig}, f)
    os._exit(0)


signal.signal(signal.SIGTERM, _on_term)
sweepq.init()
if args.i % 2 == 0:
    sweepq.log({"score": 0.0})
else:
    time.sleep(args.delay)
    t_log = time.time()
    sweepq.log({"score": 1.0})
    time.sleep(args.wait)  # SIGTERM arrives here
    with open(os.path.join(args.out, f"{args.i}.json"), "w") as f:
        json.dump({"i": args.i, "t_log": t_log, "t_sig": None}, f)
