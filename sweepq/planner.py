"""The planner: one per sweep (a lease), it keeps the queue just full enough, asks the sampler,
creates and enqueues trials, tells results back, reaps lost workers and ends the sweep.

All of its memory (the sampler) is rebuilt from Redis at start, so a planner killed at any point
and started again continues with no lost or duplicated trial: trial creation is a compare-and-set
on the sweep's next number and job ids are deterministic.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from sweepq import jobs
from sweepq.store import ENDED_STATES, Keys, Store, Sweep, Trial, job_id

__all__ = ["Planner", "Progress"]

_MAX_DEPTH = 64
# What the sampler learns from each ended state: a crash or a kill tells nothing about the point.
_SAMPLER_STATE = {"crashed": "failed", "killed": "cancelled"}


@dataclass(frozen=True)
class Progress:
    """What the live display shows after each planner step."""

    sweep: Sweep
    done: bool


class Planner:
    """Plans one sweep. `step()` does one round; `run()` loops until the sweep ends."""

    def __init__(
        self,
        store: Store,
        sweep_id: str,
        *,
        local_workers: int = 0,
        lease_ttl: float | None = None,
        claim_window: float = 10.0,
        algorithm: str | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        from sweepq.config import SweepConfig

        self.store, self.sweep_id, self.now = store, sweep_id, now
        self.keys = Keys(sweep_id)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.local_workers = local_workers
        self.claim_window = claim_window  # seconds a worker may hold a job before claiming it
        sweep = store.sweep(sweep_id)
        # A planner is judged dead as fast as a worker: its lease lasts one heartbeat timeout.
        self.lease_ttl = lease_ttl or min(15.0, max(3.0, float(sweep.settings["heartbeat_timeout"])))
        self.config = SweepConfig.from_dict(sweep.config)
        self.method = self.config.method
        self.algorithm = algorithm or str(sweep.settings.get("algorithm", "auto"))
        self._grid: list[dict[str, Any]] | None = None
        self._sampler: Any = None
        self._told: set[int] = set()
        self._events_from = "0-0"
        self._last_recovery = 0.0
        self._last_cleanup = 0.0
        self._exhausted = False
        self._rebuilt = False
        self._workers_at = 0.0
        self._workers_seen = (0, 0)
        self._taken_since: dict[str, float] = {}

    # --- lease --------------------------------------------------------------------------------

    def acquire(self, *, wait: float = 0.0) -> bool:
        """Take the sweep's planner lease, waiting up to `wait` seconds for a dead holder's
        lease to expire."""
        deadline = time.monotonic() + wait
        while True:
            if self.store.acquire_lease(self.sweep_id, "planner", self.owner, ttl=self.lease_ttl):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.5)

    def release(self) -> None:
        with contextlib.suppress(redis.RedisError):
            self.store.release_lease(self.sweep_id, "planner", self.owner)

    # --- the loop -----------------------------------------------------------------------------

    def run(
        self, *, on_progress: Callable[[Progress], None] | None = None, should_exit: Callable[[], bool] = lambda: False
    ) -> Sweep:
        """Plan until the sweep ends (or `should_exit`); returns the final sweep record."""
        try:
            while not should_exit():
                if not self.acquire():
                    raise RuntimeError(f"lost the planner lease of sweep {self.sweep_id}")
                progress = self.step()
                if on_progress is not None:
                    on_progress(progress)
                if progress.done:
                    return progress.sweep
                self._wait_for_events(0.5)
            return self.store.sweep(self.sweep_id)
        finally:
            self.release()

    def step(self) -> Progress:
        """One round: reap, learn, fill the queue, and decide whether the sweep is over."""
        if not self._rebuilt:
            self._rebuild()
        sweep = self.store.sweep(self.sweep_id)
        self._reap(sweep)
        self._learn()
        sweep = self.store.sweep(self.sweep_id)
        if sweep.state == "running":
            self._check_failures(sweep)
            self._fill(sweep)
            sweep = self.store.sweep(self.sweep_id)
        self._recover(sweep)
        done = self._maybe_end(sweep)
        if done:
            sweep = self.store.sweep(self.sweep_id)
        return Progress(sweep=sweep, done=done)

    def propose(self) -> Trial | None:
        """Create one trial without enqueueing it (notebook agent mode)."""
        if not self._rebuilt:
            self._rebuild()
        self._learn()
        sweep = self.store.sweep(self.sweep_id)
        if sweep.state != "running":
            return None
        number = self._create(sweep, sweep.created, enqueue=False)
        return None if number is None else self.store.trial(self.sweep_id, number)

    # --- pieces -------------------------------------------------------------------------------

    def _rebuild(self) -> None:
        """Start from Redis: the grid, or the sampler with every trial's record."""
        self._events_from = self.store.last_event_id(self.sweep_id)
        trials = self.store.trials(self.sweep_id)
        if self.method == "grid":
            self._grid = self.config.space.grid()
        else:
            from sweepq.sampler import Sampler

            sweep = self.store.sweep(self.sweep_id)
            self._sampler = Sampler(self.config, seed=int(sweep.settings["seed"]), algorithm=self.algorithm)
            self._sampler.rebuild([self._record(t) for t in trials])
        self._told = {t.number for t in trials if t.state in ENDED_STATES}
        self._rebuilt = True

    def _record(self, t: Trial) -> dict[str, Any]:
        intermediate = []
        if t.state == "pruned":
            intermediate = self.store.histories(self.sweep_id, [t.number])[t.number]
        return {
            "number": t.number,
            "encoded": t.encoded,
            "state": _SAMPLER_STATE.get(t.state, t.state),
            "value": t.best,
            "intermediate": intermediate,
        }

    def _learn(self) -> None:
        """Tell the sampler every trial that ended since the last round; check metric.target."""
        ended: set[int] = set()
        for entry_id, fields in self.store.events_since(self.sweep_id, self._events_from):
            self._events_from = entry_id
            if fields.get("state") in ENDED_STATES:
                ended.add(int(fields["trial"]))
        ended -= self._told
        if not ended:
            return
        self._workers_at = 0.0  # a worker just became idle: look again
        for t in self.store.trials(self.sweep_id, sorted(ended)):
            if t.state not in ENDED_STATES:
                continue  # rerun since: it will end again
            self._told.add(t.number)
            if self._sampler is not None:
                if t.encoded:
                    self._sampler.tell_record(self._record(t))
            if t.state == "finished" and self._target_reached(t):
                self.store.set_sweep_state(
                    self.sweep_id,
                    "stopped",
                    allowed=["running", "paused"],
                    reason=f"metric.target reached by trial {t.number} ({t.best:g})",
                )

    def _target_reached(self, t: Trial) -> bool:
        metric = self.config.metric
        if metric is None or metric.target is None or t.best is None:
            return False
        if metric.goal == "maximize":
            return t.best >= metric.target
        return t.best <= metric.target

    def _fill(self, sweep: Sweep) -> None:
        """Keep queued trials at the number of workers that would take them now: bayes asks
        as late as possible so each suggestion sees the freshest results."""
        n_workers, idle = self._workers(sweep.queue)
        n_workers = max(n_workers, self.local_workers)
        depth = idle if self.method == "bayes" else n_workers
        depth = max(1, min(depth, _MAX_DEPTH))
        # The lease makes this planner the only writer of new trials, so the numbers follow on
        # from the one read of the sweep (create_trial's compare-and-set still guards them).
        for number in range(sweep.created, sweep.created + depth - sweep.counts["queued"]):
            if self._create(sweep, number, enqueue=True) is None:
                break

    def _workers(self, queue: str) -> tuple[int, int]:
        """RQ's worker registry, read at most once a second: with hundreds of workers it is one
        hash read per worker."""
        now = time.monotonic()
        if now - self._workers_at > 1.0:
            self._workers_at, self._workers_seen = now, jobs.workers_on(self.store.r, queue)
        return self._workers_seen

    def _create(self, sweep: Sweep, number: int, *, enqueue: bool) -> int | None:
        if self._grid is not None:
            if number >= len(self._grid):
                self._exhausted = True
                return None
            params, encoded = self._grid[number], {}
        else:
            if sweep.cap is not None and number >= sweep.cap:
                self._exhausted = True
                return None
            suggestion = self._sampler.ask(number)
            params, encoded = suggestion.params, suggestion.encoded
        result = self.store.create_trial(self.sweep_id, number, params=params, encoded=encoded)
        if result != "ok":
            if self._sampler is not None:
                self._sampler.forget(number)
            if result == "cap":
                self._exhausted = True
            return None
        if enqueue:  # the record create_trial just wrote, without reading it back
            self._enqueue(
                sweep,
                Trial(
                    sweep_id=self.sweep_id,
                    number=number,
                    state="queued",
                    params=dict(params),
                    encoded=dict(encoded),
                    attempt=1,
                    job_id=job_id(self.sweep_id, number, 1),
                ),
            )
        return number

    def _enqueue(self, sweep: Sweep, trial: Trial) -> None:
        jobs.enqueue_trial(
            self.store.r,
            queue=sweep.queue,
            trial=trial,
            time_limit=float(sweep.settings["time_limit"]),
            grace=float(sweep.settings["grace"]),
        )

    def _reap(self, sweep: Sweep) -> None:
        """Running attempts with a stale heartbeat lost their worker: queue them again."""
        timeout = float(sweep.settings["heartbeat_timeout"])
        cutoff = self.now() - timeout
        for number, beat in self.store.running_numbers(self.sweep_id).items():
            if beat >= cutoff:
                continue
            trial = self.store.trial(self.sweep_id, number)
            result = self.store.expire(
                self.sweep_id,
                number,
                attempt=trial.attempt,
                cutoff=cutoff,
                max_attempts=int(sweep.settings["max_attempts"]),
            )
            if result == "queued" and sweep.state == "running":
                self._enqueue(sweep, self.store.trial(self.sweep_id, number))
        if time.monotonic() - self._last_cleanup > 30:
            self._last_cleanup = time.monotonic()
            from rq import Queue
            from rq.registry import StartedJobRegistry

            with contextlib.suppress(Exception):
                StartedJobRegistry(queue=Queue(sweep.queue, connection=self.store.r)).cleanup()

    def _recover(self, sweep: Sweep) -> None:
        """A queued trial whose job vanished (planner died between create and enqueue, a paused
        claim, a Redis restart) gets its job again; so does one whose job a worker took but never
        claimed (the worker died in between: RQ alone would keep it "started" forever). The
        attempt fence makes a duplicate harmless: only one claim of an attempt succeeds."""
        now = time.monotonic()
        if sweep.state != "running" or now - self._last_recovery < 3:
            return
        self._last_recovery = now
        taken_since, self._taken_since = self._taken_since, {}
        for number in self.store.queued_numbers(self.sweep_id):
            trial = self.store.trial(self.sweep_id, number)
            if trial.state != "queued":
                continue
            where = jobs.job_state(self.store.r, trial.job_id, sweep.queue)
            if where == "taken":
                first = taken_since.get(trial.job_id, now)
                if now - first < self.claim_window:
                    self._taken_since[trial.job_id] = first
                    continue
            if where != "waiting":
                self._enqueue(sweep, trial)

    def _check_failures(self, sweep: Sweep) -> None:
        """A broken program fails every trial: pause after the first few instead of burning the
        whole grid."""
        limit = int(sweep.settings["fail_pause"])
        failed = sweep.counts["failed"] + sweep.counts["crashed"]
        if limit <= 0 or sweep.counts["finished"] or sweep.counts["pruned"] or failed < limit:
            return
        if sweep.state_reason and sweep.state_reason.startswith("resumed"):
            return
        failures = [t for t in self.store.trials(self.sweep_id) if t.state in ("failed", "crashed")]
        why = next((t.reason for t in reversed(failures) if t.reason), "unknown")
        self.store.set_sweep_state(
            self.sweep_id,
            "paused",
            allowed=["running"],
            reason=f"the first {failed} trials all failed (last: {why}); fix the program, then "
            f"`sweepq resume {self.sweep_id}`",
        )

    def _maybe_end(self, sweep: Sweep) -> bool:
        if sweep.active:
            return False
        if sweep.state == "running" and self._exhausted:
            self.store.set_sweep_state(self.sweep_id, "finished", allowed=["running"], reason="all trials done")
            return True
        return sweep.state in ("stopped", "cancelled", "finished")

    def _wait_for_events(self, timeout: float) -> None:
        with contextlib.suppress(redis.RedisError):
            self.store.wait_events(self.sweep_id, self._events_from, timeout=timeout)
