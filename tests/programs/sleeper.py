"""Logs `loss=<x>` then sleeps `--sleep` seconds and logs again (stdout protocol); records
each start in $SWEEPQ_TEST_OUT/started-<trial>."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _args import parse  # noqa: E402

args = parse(sys.argv[1:])
out = os.environ.get("SWEEPQ_TEST_OUT")
if out:
    open(os.path.join(out, f"started-{os.environ['SWEEPQ_TRIAL']}"), "w").close()
x = float(args.get("x", 1))
print(f"loss={x}", flush=True)
time.sleep(float(args.get("sleep", 1)))
print(f"loss={x}", flush=True)
