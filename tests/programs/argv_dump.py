"""Writes the argv it received to $SWEEPQ_TEST_OUT/argv-<trial>.json, then logs a metric."""

import json
import os
import sys

out = os.environ["SWEEPQ_TEST_OUT"]
with open(os.path.join(out, f"argv-{os.environ['SWEEPQ_TRIAL']}.json"), "w") as f:
    json.dump(sys.argv[1:], f)
print("loss=1.0", flush=True)
