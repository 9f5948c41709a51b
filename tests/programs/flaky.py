"""Fails for an even `--x` unless $SWEEPQ_TEST_OUT/allow exists; records every attempt's argv
to $SWEEPQ_TEST_OUT/runs.jsonl."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _args import parse  # noqa: E402

out = os.environ["SWEEPQ_TEST_OUT"]
with open(os.path.join(out, "runs.jsonl"), "a") as f:
    f.write(
        json.dumps(
            {
                "trial": int(os.environ["SWEEPQ_TRIAL"]),
                "attempt": int(os.environ["SWEEPQ_ATTEMPT"]),
                "argv": sys.argv[1:],
            }
        )
        + "\n"
    )
x = int(parse(sys.argv[1:])["x"])
if x % 2 == 0 and not os.path.exists(os.path.join(out, "allow")):
    sys.exit(f"even x={x} fails until allowed")
print(f"loss={x}", flush=True)
