"""CPU per process of a command's process tree (issue 13's breakdown of a trial's cost).

    .venv/bin/python benchmarks/cpu_tree.py sweepq plan sweep.yaml --workers 2 --redis URL

Polls the tree every 50 ms (psutil) and prints, for each process seen, its own CPU seconds and
its reaped children's; short-lived trial programs show up in their horse's children column.
Divide by the number of trials (and compare runs of 10 and 200 trials to take out start-up).
"""

from __future__ import annotations

import subprocess
import sys
import time

import psutil


def main() -> None:
    proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = psutil.Process(proc.pid)
    last: dict[int, tuple[str, float, float, int]] = {}
    while proc.poll() is None:
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for q in procs:
            try:
                with q.oneshot():
                    ct = q.cpu_times()
                    last[q.pid] = (
                        " ".join(q.cmdline())[:70],
                        ct.user + ct.system,
                        ct.children_user + ct.children_system,
                        q.ppid(),
                    )
            except psutil.Error:
                pass
        time.sleep(0.05)
    for pid, (name, own, children, ppid) in sorted(last.items()):
        if own > 0.05:
            print(f"{pid:7d} ppid {ppid:7d} own {own:6.2f} s  children {children:6.2f} s  {name}")


if __name__ == "__main__":
    main()
