"""Logs LOG_ROWS rows as fast as it can and prints the time one `sweepq.log()` took (log_rate.py)."""

import os
import time

import sweepq

n = int(os.environ.get("LOG_ROWS", "5000"))
run = sweepq.init()
t = time.perf_counter()
for i in range(n):
    sweepq.log({"loss": 1.0 / (i + 1), "lr": 0.001, "epoch": i // 100})
print(f"LOG_RATE per_log_us {(time.perf_counter() - t) / n * 1e6:.2f}", flush=True)
