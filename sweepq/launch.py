"""What `sweepq plan` does around the planner: create or resume the sweep, start local workers
and the pruner, show progress, and clean up."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sweepq.errors import SweepqError
from sweepq.model import DEFAULT_QUEUE, Settings, Sweep, SweepState
from sweepq.store import Store

__all__ = ["Outcome", "PlanOptions", "create", "detach", "run", "stall_reason"]


@dataclass(frozen=True)
class PlanOptions:
    """How this `sweepq plan` runs; what the sweep itself keeps is in `settings`."""

    redis: str | None = None
    workers: int | None = None
    count: int | None = None
    queue: str | None = None  # --queue; None: "sweepq", or the sweep's own for local-only sweeps
    prune: bool = True
    settings: Settings = field(default_factory=Settings)


def create(path: str | None, *, resume: str | None, opts: PlanOptions) -> tuple[str, str]:
    """Validate (nothing is written for a bad config), connect, create or find the sweep."""
    from sweepq import config as cfgmod
    from sweepq.server import connect, resolve, server_warnings

    cfg = cfgmod.load(path) if path is not None else None
    if cfg is not None:
        for warning in cfg.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    if opts.count is not None and opts.count <= 0:
        raise SweepqError(f"--count: must be a positive integer ({opts.count})")
    url = resolve(opts.redis)
    store = Store(connect(url))
    for warning in server_warnings(store.r):
        print(f"warning: {warning}", file=sys.stderr)
    if cfg is None:
        assert resume is not None
        sweep = store.sweep(resume)
        if stall_reason(sweep) is not None:  # paused by sweepq itself: a person fixed it and asks to go on
            from sweepq import control

            control.resume(store, resume)
        if opts.count is not None:
            store.set_cap(resume, sweep.created + opts.count)
        return resume, url
    caps = [c for c in (cfg.run_cap, opts.count) if c is not None]
    sweep_id, queue = _sweep_queue(opts)
    settings = replace(opts.settings, workdir=os.getcwd(), queue=queue)
    sweep_id = store.create_sweep(cfg, settings, cap=min(caps) if caps else None, sweep_id=sweep_id)
    return sweep_id, url


def _sweep_queue(opts: PlanOptions) -> tuple[str | None, str]:
    """Workers that `plan` starts on an embedded server take only this sweep's jobs: the sweep
    gets a queue of its own, so another sweep's leftover queued jobs wait for their own planner.
    With a Redis URL (remote workers listen on "sweepq") or an explicit --queue, as asked."""
    if opts.queue is not None:
        return None, opts.queue
    if opts.redis or os.environ.get("SWEEPQ_REDIS_URL"):
        return None, DEFAULT_QUEUE
    from sweepq.store import new_sweep_id

    sweep_id = new_sweep_id()
    return sweep_id, f"sweepq-{sweep_id}"


def detach(sweep_id: str, *, url: str, opts: PlanOptions) -> Path:
    """Plan in a background process that outlives this command; returns its log file."""
    from sweepq.server import home_dir

    log_dir = home_dir() / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "sweepq",
        "plan",
        "--resume",
        sweep_id,
        "--redis",
        url,
        "--workers",
        str(_workers(opts)),
    ]
    if not opts.prune:
        argv.append("--no-prune")
    path = log_dir / f"planner-{sweep_id}.log"
    with open(path, "ab") as log:
        subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    return path


def _workers(opts: PlanOptions) -> int:
    if opts.workers is not None:
        return opts.workers
    return 0 if (opts.redis or os.environ.get("SWEEPQ_REDIS_URL")) else 1


@dataclass(frozen=True)
class Outcome:
    """How `plan` ended: the sweep record, and why it returned (ended, interrupted or stalled:
    the sweep can make no progress without a person, `message` says what to do)."""

    sweep: Sweep
    why: str
    message: str = ""


def stall_reason(sweep: Sweep, workers: list[subprocess.Popen[bytes]] | None = None) -> str | None:
    """Why the sweep cannot go on without a person, or None. A pause by the user is not one: the
    planner waits for `sweepq resume` then; a pause by sweepq itself (a broken program) is."""
    if sweep.state == SweepState.PAUSED and not sweep.state_by_user:
        return sweep.state_reason or "the sweep paused itself"
    if workers and sweep.active and all(w.poll() is not None for w in workers):
        return "every local worker exited (see their logs under .sweepq/logs/)"
    return None


def run(sweep_id: str, *, url: str, opts: PlanOptions) -> Outcome:
    """Plan to the end with `--workers` local workers and the pruner in a thread."""
    from sweepq.planner import Planner, Progress
    from sweepq.pruner import Pruner
    from sweepq.report.progress import PlanDisplay
    from sweepq.server import connect, home_dir
    from sweepq.worker import spawn_local_workers, stop_local_workers

    store = Store(connect(url, long_running=True))
    sweep = store.sweep(sweep_id)
    grace = sweep.settings.grace
    n_workers = _workers(opts)
    planner = Planner(store, sweep_id, local_workers=n_workers)
    if not planner.acquire(wait=planner.lease_ttl + 2):
        holder = store.lease_holder(sweep_id, "planner")
        raise SweepqError(
            f"sweep {sweep_id} already has a planner ({holder}); stop it first or wait for its lease to expire"
        )
    stop = threading.Event()
    interrupted = _exit_on_signals(stop)
    threads: list[threading.Thread] = []
    if opts.prune:
        pruner = Pruner(Store(connect(url, long_running=True)), sweep_id)
        if pruner.enabled:
            threads.append(
                threading.Thread(
                    target=pruner.run, kwargs={"should_exit": stop.is_set}, name="sweepq-pruner", daemon=True
                )
            )
    workers: list[subprocess.Popen[bytes]] = []
    if n_workers:
        from sweepq.trust import local_worker_env

        env = local_worker_env(store.signer, sweep.config.program)
        queue = sweep.queue  # the sweep's own (also on --resume)
        workers = spawn_local_workers(url, queue, n_workers, log_dir=home_dir() / "logs", env=env)
    for t in threads:
        t.start()
    display = PlanDisplay(store, sweep)
    stalled: list[str] = []

    def on_progress(progress: Progress) -> None:
        display.update(progress)
        why = None if progress.done else stall_reason(progress.sweep, workers)
        if why is not None:
            stalled.append(why)
            stop.set()

    try:
        final = planner.run(on_progress=on_progress, should_exit=stop.is_set)
    finally:
        stop.set()
        display.close()
        stop_local_workers(workers, store.r, grace=grace)
        for t in threads:
            t.join(timeout=5)
    if stalled:
        return Outcome(final, "stalled", stalled[0])
    if interrupted:
        return Outcome(final, "interrupted")
    return Outcome(final, "ended")


def _exit_on_signals(stop: threading.Event) -> list[int]:
    """SIGINT/SIGTERM end the plan cleanly; the returned list records the signals received."""
    received: list[int] = []

    def _handler(signum: int, _frame: Any) -> None:
        received.append(signum)
        stop.set()

    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGTERM, _handler)
        signal.signal(signal.SIGINT, _handler)
    return received
