"""What `sweepq plan` does around the planner: create or resume the sweep, start local workers
and the pruner, show progress, and clean up."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from sweepq.errors import SweepqError
from sweepq.model import Settings, Sweep
from sweepq.store import Store

__all__ = ["PlanOptions", "create", "detach", "run"]


@dataclass(frozen=True)
class PlanOptions:
    """How this `sweepq plan` runs; what the sweep itself keeps is in `settings`."""

    redis: str | None = None
    workers: int | None = None
    count: int | None = None
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
        if opts.count is not None:
            store.set_cap(resume, sweep.created + opts.count)
        return resume, url
    caps = [c for c in (cfg.run_cap, opts.count) if c is not None]
    sweep_id = store.create_sweep(cfg, replace(opts.settings, workdir=os.getcwd()), cap=min(caps) if caps else None)
    return sweep_id, url


def detach(sweep_id: str, *, url: str, opts: PlanOptions) -> None:
    """Plan in a background process that outlives this command."""
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
        "--queue",
        opts.settings.queue,
    ]
    if not opts.prune:
        argv.append("--no-prune")
    with open(log_dir / f"planner-{sweep_id}.log", "ab") as log:
        subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def _workers(opts: PlanOptions) -> int:
    if opts.workers is not None:
        return opts.workers
    return 0 if (opts.redis or os.environ.get("SWEEPQ_REDIS_URL")) else 1


def run(sweep_id: str, *, url: str, opts: PlanOptions) -> Sweep:
    """Plan to the end with `--workers` local workers and the pruner in a thread."""
    from sweepq.planner import Planner
    from sweepq.pruner import Pruner
    from sweepq.server import connect, home_dir
    from sweepq.worker import spawn_local_workers, stop_local_workers

    store = Store(connect(url, long_running=True))
    grace = store.sweep(sweep_id).settings.grace
    n_workers = _workers(opts)
    planner = Planner(store, sweep_id, local_workers=n_workers)
    if not planner.acquire(wait=planner.lease_ttl + 2):
        holder = store.lease_holder(sweep_id, "planner")
        raise SweepqError(
            f"sweep {sweep_id} already has a planner ({holder}); stop it first or wait for its lease to expire"
        )
    stop = threading.Event()
    _exit_on_signals(stop)
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

        env = local_worker_env(store.signer, store.sweep(sweep_id).config.program)
        workers = spawn_local_workers(url, opts.settings.queue, n_workers, log_dir=home_dir() / "logs", env=env)
    for t in threads:
        t.start()
    display = _Display(store)
    try:
        return planner.run(on_progress=display.update, should_exit=stop.is_set)
    finally:
        stop.set()
        display.close()
        stop_local_workers(workers, store.r, grace=grace)
        for t in threads:
            t.join(timeout=5)


def _exit_on_signals(stop: threading.Event) -> None:
    def _handler(_signum: int, _frame: Any) -> None:
        stop.set()

    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGTERM, _handler)
        signal.signal(signal.SIGINT, _handler)


class _Display:
    """A live progress line on stderr (rich), refreshed at most twice a second."""

    def __init__(self, store: Store) -> None:
        from rich.console import Console
        from rich.live import Live

        self.store = store
        self.console = Console(stderr=True)
        self.live = Live(console=self.console, refresh_per_second=2, transient=False)
        self.live.start()
        self._last = 0.0
        self._text = ""

    def update(self, progress: Any) -> None:
        from sweepq.report import best_trial, progress_line

        now = time.monotonic()
        if now - self._last < 0.5 and not progress.done:
            return
        self._last = now
        sweep = progress.sweep
        best = best_trial(sweep, self.store.trials(sweep.id))
        self._text = progress_line(sweep, best)
        from rich.text import Text

        self.live.update(Text(self._text))

    def close(self) -> None:
        self.live.stop()
        if not self.console.is_terminal:
            self.console.print()
