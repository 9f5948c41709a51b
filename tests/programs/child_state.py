"""Writes what the program started with: its parent-death signal, SIGTERM's disposition, its
parent pid; then sleeps `--hold` seconds (so a test can kill its worker and horse meanwhile)."""

import ctypes
import json
import os
import signal
import sys
import time

from _args import parse

a = parse(sys.argv[1:])
value = ctypes.c_int(0)
ctypes.CDLL(None, use_errno=True).prctl(2, ctypes.byref(value), 0, 0, 0)  # PR_GET_PDEATHSIG
state = {
    "pdeathsig": value.value,
    "sigterm_default": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
    "parent": os.getppid(),
    "pid": os.getpid(),
}
out = os.environ["SWEEPQ_TEST_OUT"]
with open(os.path.join(out, f"child-{a['i']}.json"), "w") as f:
    json.dump(state, f)
time.sleep(float(a.get("hold", 0)))
print("loss=0.5")
sys.exit(0)
