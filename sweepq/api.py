"""`wandb.sweep` + `wandb.agent`, and what `sweepq sweep` / `sweepq agent` run.

`agent()` runs trials of one sweep in the calling process (or terminal), whether or not a
planner runs elsewhere: if the sweep's planner lease is free it takes it and plans as it goes
(with the pruner in a thread); if another process holds it, the agent is one more worker that
takes this sweep's queued trials (and only this sweep's), claiming each like `rq worker` does,
and takes the lease over if that planner dies. Program trials run in a forked child that leads
its own process group, as RQ's work horse does, so a stop reaches the program's whole tree, the
program dies with the agent, and `nohup sweepq agent ID &` survives its terminal.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sweepq.model import Trial
    from sweepq.planner import Planner
    from sweepq.pruner import Pruner
    from sweepq.store import Store

__all__ = ["agent", "sweep"]


def sweep(
    sweep: Mapping[str, Any] | str | None = None,
    entity: str | None = None,
    project: str | None = None,
    prior_runs: Any = None,
    *,
    config: Mapping[str, Any] | str | None = None,
    redis: str | None = None,
    queue: str = "sweepq",
    seed: int | None = None,
    **settings: Any,
) -> str:
    """Validate the config, create the sweep in Redis (embedded if no URL) and return its id.

    As `wandb.sweep(sweep, entity=, project=)`; `config=` is sweepq's older spelling.
    """
    from sweepq.config import load
    from sweepq.errors import SweepqError
    from sweepq.model import Settings, random_seed
    from sweepq.server import connect
    from sweepq.store import Store

    source = sweep if sweep is not None else config
    if source is None:
        raise SweepqError("sweep(): give the sweep config (a dict or a YAML path)")
    cfg = load(source, require_program=False)  # notebook mode runs a function
    for warning in cfg.warnings:
        print(f"sweepq: warning: {warning}", file=sys.stderr)
    if project and cfg.project is None:
        cfg = replace(cfg, project=project)
    if entity and cfg.entity is None:
        cfg = replace(cfg, entity=entity)
    store = Store(connect(redis))
    seed = random_seed() if seed is None else seed
    return store.create_sweep(cfg, Settings(queue=queue, seed=seed, workdir=os.getcwd(), **settings), cap=cfg.run_cap)


def agent(
    sweep_id: str,
    function: Callable[[], Any] | None = None,
    count: int | None = None,
    project: str | None = None,
    entity: str | None = None,
    *,
    redis: str | None = None,
    quiet: bool = False,
) -> int:
    """Run up to `count` trials of the sweep here, one after another; returns how many ran.

    `function` runs in this process (notebook mode); without it each trial runs the sweep's
    program. `project` and `entity` are accepted as in wandb (the sweep id is enough here).
    """
    from sweepq.planner import Planner
    from sweepq.pruner import Pruner
    from sweepq.server import connect, resolve
    from sweepq.store import Store

    url = resolve(redis)
    store = Store(connect(url, long_running=True))
    store.sweep(sweep_id)  # a clear error for an unknown id
    planner = Planner(store, sweep_id)
    pruner = Pruner(Store(connect(url, long_running=True)), sweep_id)
    say = _Say(quiet)
    me = f"{socket.gethostname()}:{os.getpid()}"
    ran = 0
    planning = False
    try:
        while count is None or ran < count:
            planning = planner.acquire()
            trial = _next_queued(store, sweep_id)
            if trial is None and planning:
                trial = planner.propose()
            if trial is None:
                if planning or _sweep_over(store, sweep_id):
                    break
                _Waiting(store, sweep_id).announce(me)  # the planning agent makes a trial for us
                time.sleep(0.5)
                continue
            _Waiting(store, sweep_id).withdraw(me)
            say.start(trial, planning)
            started = time.monotonic()
            helper = _Helper(planner, pruner, store, sweep_id) if planning else None
            final = _run_one(trial, url, function, helper)
            say.end(store, trial, final, time.monotonic() - started)
            if final not in ("paused", "cancelled", "stale", "missing", "running"):
                ran += 1
    finally:
        _Waiting(store, sweep_id).withdraw(me)
        if planning:
            planner.release()
    return ran


class _Waiting:
    """Agents without the lease that wait for a trial (a sorted set of last announcements)."""

    ttl = 5.0

    def __init__(self, store: Store, sweep_id: str) -> None:
        self.store, self.sweep_id = store, sweep_id

    def announce(self, me: str) -> None:
        self.store.announce_agent(self.sweep_id, me, waiting=True)

    def withdraw(self, me: str) -> None:
        self.store.announce_agent(self.sweep_id, me, waiting=False)

    def count(self) -> int:
        return self.store.waiting_agents(self.sweep_id, ttl=self.ttl)


class _Helper:
    """While the planning agent runs its own trial: the pruner, and a trial queued for each
    agent that waits for one (other boxes, other terminals), so all of them work."""

    def __init__(self, planner: Planner, pruner: Pruner, store: Store, sweep_id: str) -> None:
        import threading

        self.planner, self.pruner, self.store, self.sweep_id = planner, pruner, store, sweep_id
        self.done = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        import threading

        targets = [self._feed] + ([self._prune] if self.pruner.enabled else [])
        for target in targets:
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self) -> None:
        self.done.set()
        for thread in self.threads:
            thread.join(timeout=5)

    def _prune(self) -> None:
        while not self.done.is_set():
            self.pruner.step(block=0.2)

    def _feed(self) -> None:
        waiting = _Waiting(self.store, self.sweep_id)
        while not self.done.wait(0.5):
            if not self.planner.acquire():
                return
            queued = self.store.sweep(self.sweep_id).counts["queued"]
            for _ in range(waiting.count() - queued):
                if self.planner.propose() is None:
                    return


def _next_queued(store: Store, sweep_id: str) -> Trial | None:
    """The lowest queued trial of this sweep (its RQ job, if any, then finds it claimed)."""
    for trial in store.trials(sweep_id, store.queued_numbers(sweep_id)):
        if trial.state == "queued":
            return trial
    return None


def _sweep_over(store: Store, sweep_id: str) -> bool:
    return str(store.sweep(sweep_id).state) not in ("running", "paused")


def _run_one(trial: Trial, url: str, function: Callable[[], Any] | None, helper: _Helper | None) -> str:
    start = helper.start if helper is not None else (lambda: None)
    try:
        worker = f"agent:{socket.gethostname()}:{os.getpid()}"
        if function is not None:
            from sweepq import runner
            from sweepq.server import connect
            from sweepq.store import Store

            start()
            return runner.execute(
                Store(connect(url, long_running=True)),
                trial.sweep_id,
                trial.number,
                attempt=trial.attempt,
                url=url,
                worker=worker,
                function=function,
            )
        _drop_job(url, trial)
        return _run_in_horse(trial, url, worker, after_fork=start)
    finally:
        if helper is not None:
            helper.stop()


def _drop_job(url: str, trial: Trial) -> None:
    """The trial's RQ job, if a planner queued one, leaves the queue: this agent runs it (an rq
    worker that already took it loses the claim and does nothing)."""
    import contextlib

    from rq.queue import Queue

    from sweepq.server import connect
    from sweepq.store import Store

    with contextlib.suppress(Exception):
        store = Store(connect(url))
        Queue(store.sweep(trial.sweep_id).queue, connection=store.r).remove(trial.job_id)


def _run_in_horse(trial: Trial, url: str, worker: str, *, after_fork: Callable[[], None]) -> str:
    """Fork a child that leads its own process group and runs the trial there, as RQ's work
    horse does: the runner's group kill and parent-death guard then work as under `rq worker`.
    The fork happens before any thread of ours starts (a lock held by a thread at fork time
    would stay held forever in the child)."""
    import signal

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the horse
        os.close(read_fd)
        code = 1
        try:
            os.setpgid(0, 0)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            from sweepq import runner
            from sweepq.server import connect
            from sweepq.store import Store

            final = runner.execute(
                Store(connect(url, long_running=True)),
                trial.sweep_id,
                trial.number,
                attempt=trial.attempt,
                url=url,
                worker=worker,
            )
            os.write(write_fd, final.encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    after_fork()
    try:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    except KeyboardInterrupt:
        # The trial's heartbeat stops: a planner queues it again as its next attempt.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        raise
    with os.fdopen(read_fd, "rb") as f:
        return f.read().decode() or "crashed"


class _Say:
    """Per-trial lines on stderr, like W&B's agent (`Agent Starting Run: ... with config:`)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def start(self, trial: Trial, planning: bool) -> None:
        if self.quiet:
            return
        lines = [f"sweepq: agent starting trial {trial.number} of sweep {trial.sweep_id} with config:"]
        lines += [f"sweepq: \t{k}: {v}" for k, v in trial.params.items()]
        print("\n".join(lines), file=sys.stderr, flush=True)

    def end(self, store: Store, trial: Trial, final: str, seconds: float) -> None:
        if self.quiet:
            return
        fresh = store.trial(trial.sweep_id, trial.number)
        best = "" if fresh.best is None else f", best {fresh.best:g}"
        why = f": {fresh.reason}" if fresh.reason and final != "finished" else ""
        print(f"sweepq: trial {trial.number} {final} in {seconds:.1f}s{best}{why}", file=sys.stderr, flush=True)
