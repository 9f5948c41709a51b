"""Notebook mode, as in `wandb.sweep` + `wandb.agent`: create a sweep and run its trials in the
calling process."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

__all__ = ["agent", "sweep"]


def sweep(
    config: Mapping[str, Any] | str,
    *,
    project: str | None = None,
    redis: str | None = None,
    queue: str = "sweepq",
    seed: int | None = None,
    **settings: Any,
) -> str:
    """Validate the config, create the sweep in Redis (embedded if no URL) and return its id."""
    from sweepq import config as cfgmod
    from sweepq.model import Settings, random_seed
    from sweepq.server import connect
    from sweepq.store import Store

    cfg = cfgmod.load(config, require_program=False)  # notebook mode runs a function
    if project and cfg.project is None:
        cfg = replace(cfg, project=project)
    store = Store(connect(redis))
    seed = random_seed() if seed is None else seed
    return store.create_sweep(cfg, Settings(queue=queue, seed=seed, workdir=os.getcwd(), **settings), cap=cfg.run_cap)


def agent(
    sweep_id: str,
    function: Callable[[], Any],
    count: int | None = None,
    *,
    redis: str | None = None,
) -> int:
    """Run up to `count` trials of the sweep here, one after another; returns how many ran.

    The agent plans as it goes (it holds the sweep's planner lease meanwhile), so no
    `sweepq plan` is needed; early termination acts through `log()` raising `sweepq.Stopped`.
    """
    from sweepq.planner import Planner
    from sweepq.pruner import Pruner
    from sweepq.server import connect, resolve
    from sweepq.store import Store

    url = resolve(redis)
    store = Store(connect(url, long_running=True))
    planner = Planner(store, sweep_id)
    if not planner.acquire(wait=planner.lease_ttl + 1):
        from sweepq.errors import SweepqError

        raise SweepqError(f"sweep {sweep_id} is being planned elsewhere; run workers instead")
    pruner = Pruner(Store(connect(url, long_running=True)), sweep_id)
    ran = 0
    try:
        while count is None or ran < count:
            planner.acquire()
            trial = planner.propose()
            if trial is None:
                break
            _run_with_pruner(store, pruner, trial, url, function)
            ran += 1
    finally:
        planner.release()
    return ran


def _run_with_pruner(store: Any, pruner: Any, trial: Any, url: str, function: Callable[[], Any]) -> None:
    import threading

    from sweepq import runner

    done = threading.Event()
    thread = None
    if pruner.enabled:

        def _prune() -> None:
            while not done.is_set():
                pruner.step(block=0.2)

        thread = threading.Thread(target=_prune, daemon=True)
        thread.start()
    try:
        runner.execute(
            store,
            trial.sweep_id,
            trial.number,
            attempt=trial.attempt,
            url=url,
            worker=f"agent:{socket.gethostname()}:{os.getpid()}",
            function=function,
        )
    finally:
        done.set()
        if thread is not None:
            thread.join(timeout=5)
