"""Prints LOG_ROWS `name=value` metric lines as fast as it can (the stdout protocol, no SDK) and
the time one line took (log_rate.py --program print_flood.py)."""

import os
import time

n = int(os.environ.get("LOG_ROWS", "5000"))
t = time.perf_counter()
for i in range(n):
    print(f"loss={1.0 / (i + 1)} lr=0.001 epoch={i // 100}")
print(f"LOG_RATE per_log_us {(time.perf_counter() - t) / n * 1e6:.2f}", flush=True)
