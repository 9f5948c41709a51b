"""A program whose `--mode` decides how it behaves: ok, crash, nolog, nan (stdout protocol)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _args import parse  # noqa: E402

mode = parse(sys.argv[1:]).get("mode", "ok")
if mode == "ok":
    print("loss=0.25", flush=True)
elif mode == "crash":
    print("about to crash", flush=True)
    raise RuntimeError("boom-crash-marker")
elif mode == "nolog":
    print("training done, but I never print the metric", flush=True)
elif mode == "nan":
    print("loss=nan", flush=True)
    print("loss=inf", flush=True)
    print("loss=0.5", flush=True)
else:
    sys.exit(f"unknown mode {mode}")
