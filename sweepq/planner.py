"""The planner: one per sweep (a lease), it keeps the queue just full enough, asks the sampler,
creates and enqueues trials, tells results back, reaps lost workers and ends the sweep.

All of its memory (the sampler) is rebuilt from Redis at start, so a planner killed at any point
and started again continues with no lost or duplicated trial: trial creation is a compare-and-set
on the sweep's next number and job ids are deterministic.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

if TYPE_CHECKING:
    from sweepq.sampler import Sampler
    from sweepq.space import GridIndex

from sweepq import jobs
from sweepq.model import StopKind, Sweep, SweepState, Trial, TrialState, job_id
from sweepq.store import Store

__all__ = ["Planner", "Progress"]

_MAX_DEPTH = 64
_WORKER_SCAN_EVERY = 5.0  # seconds; RQ's registry is one hash read per worker
_LEFTOVER_GRACE = 3.0  # seconds a queued trial of a closed sweep is left to `stop`/`cancel` themselves


@dataclass(frozen=True)
class Progress:
    """What the live display shows after each planner step: counts come with the sweep record,
    the best trial is tracked as trials end, so showing progress reads nothing more."""

    sweep: Sweep
    done: bool
    best: Trial | None = None


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
        self.store, self.sweep_id, self.now = store, sweep_id, now
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.local_workers = local_workers
        self.claim_window = claim_window  # seconds a worker may hold a job before claiming it
        sweep = store.sweep(sweep_id)
        self.settings = sweep.settings
        self.lease_ttl = lease_ttl or sweep.settings.lease_ttl
        self.config = sweep.config
        self.method = self.config.method
        self.algorithm = algorithm or sweep.settings.algorithm
        self._grid: GridIndex | None = None
        self._sampler: Sampler | None = None
        self.best: Trial | None = None
        # Between events the planner only needs to renew its lease (ttl/3) and reap lost workers
        # (a quarter of the heartbeat timeout is soon enough); any trial or sweep change wakes it.
        self._idle_wait = min(2.0, self.lease_ttl / 3, sweep.settings.heartbeat_timeout / 4)
        self._told: set[int] = set()
        self._sweep_changed = False
        self._events_from = "0-0"
        # Events the last wait returned (None: none read since the last round, so read them).
        self._arrived: list[tuple[str, dict[str, str]]] | None = None
        self._fresh: Sweep | None = None  # the record read with them, unless a round changed it since
        self._last_recovery = 0.0
        self._last_cleanup = 0.0
        self._last_reap = -1e9
        self._exhausted = False
        self._rebuilt = False
        self._workers_at = -_WORKER_SCAN_EVERY
        self._n_workers = 0
        self._taken_since: dict[str, float] = {}
        self._leftovers: dict[int, float] = {}  # queued trials of a closed sweep: first seen

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
            renewed = -1e9
            while not should_exit():
                # Renewed every ttl/3, not every round: a round per trial event would be a
                # script call per event, and the lease still has 2/3 of its ttl left.
                if time.monotonic() - renewed >= self.lease_ttl / 3:
                    if not self.acquire():
                        raise RuntimeError(f"lost the planner lease of sweep {self.sweep_id}")
                    renewed = time.monotonic()
                progress = self.step()
                if on_progress is not None:
                    on_progress(progress)
                if progress.done:
                    return progress.sweep
                self._wait_for_events(self._idle_wait)
            return self.store.sweep(self.sweep_id)
        finally:
            self.release()

    def step(self) -> Progress:
        """One round: learn, reap, fill the queue, and decide whether the sweep is over. The
        sweep record is read once, and again only when reaping changed it."""
        if not self._rebuilt:
            self._rebuild()
        fresh, self._fresh = self._fresh, None
        if self._learn() and self._sweep_changed:
            fresh = None  # the round changed the sweep's state (metric.target)
        # One read of the sweep per round, after what was learned: the one that came with the
        # events (it counts at least their changes), else its own.
        sweep = fresh or self.store.sweep(self.sweep_id)
        if self._reap(sweep):
            sweep = self.store.sweep(self.sweep_id)
        if sweep.state == SweepState.RUNNING:
            self._check_failures(sweep)
            created = self._fill(sweep)
            if created:
                # The lease makes this planner the only creator: the record after the fill is
                # the one read before it plus what it queued (not a third read every round).
                counts = {**sweep.counts, TrialState.QUEUED: sweep.counts[TrialState.QUEUED] + created}
                sweep = dataclasses.replace(sweep, created=sweep.created + created, counts=counts)
                return Progress(sweep=sweep, done=False, best=self.best)
        self._recover(sweep)
        done = self._maybe_end(sweep)
        if done:
            sweep = self.store.sweep(self.sweep_id)
            if sweep.settings.retention > 0:
                self.store.expire_sweep(self.sweep_id, max(1, int(sweep.settings.retention)))
        return Progress(sweep=sweep, done=done, best=self.best)

    def propose(self) -> Trial | None:
        """Create one trial without enqueueing it (notebook agent mode)."""
        if not self._rebuilt:
            self._rebuild()
        self._learn()
        sweep = self.store.sweep(self.sweep_id)
        if sweep.state != SweepState.RUNNING:
            return None
        number = self._create(sweep, sweep.created, enqueue=False)
        return None if number is None else self.store.trial(self.sweep_id, number)

    # --- pieces -------------------------------------------------------------------------------

    def _rebuild(self) -> None:
        """Start from Redis: the grid, or the sampler with every trial's record."""
        self._events_from = self.store.last_event_id(self.sweep_id)
        trials = self.store.trials(self.sweep_id)
        if self.method == "grid":
            self._grid = self.config.space.grid_index()
        else:
            from sweepq.sampler import Sampler

            self._sampler = Sampler(self.config, seed=self.settings.seed, algorithm=self.algorithm)
            self._sampler.rebuild([self._record(t) for t in trials])
        for t in trials:
            self._track_best(t)
        self._told = {t.number for t in trials if t.state.ended}
        self._rebuilt = True

    def _record(self, t: Trial) -> dict[str, Any]:
        intermediate = []
        if t.state == TrialState.PRUNED:
            intermediate = self.store.histories(self.sweep_id, [t.number])[t.number]
        return {
            "number": t.number,
            "encoded": t.encoded,
            "state": t.state.told_as,
            "value": t.best,
            "intermediate": intermediate,
        }

    def _track_best(self, t: Trial) -> None:
        metric = self.config.metric
        if metric is None or t.best is None or t.state not in (TrialState.FINISHED, TrialState.PRUNED):
            return
        if self.best is None or self.best.best is None or metric.better(t.best, self.best.best):
            self.best = t

    def _learn(self) -> bool:
        """Tell the sampler every trial that ended since the last round; check metric.target.
        True if any trial ended."""
        ended: set[int] = set()
        self._sweep_changed = False
        arrived, self._arrived = self._arrived, None
        if arrived is None:
            arrived = self.store.events_since(self.sweep_id, self._events_from)
        for entry_id, fields in arrived:
            self._events_from = entry_id
            if "trial" in fields and TrialState(fields["state"]).ended:
                ended.add(int(fields["trial"]))
        ended -= self._told
        if not ended:
            return False
        metric = self.config.metric
        for t in self.store.trials(self.sweep_id, sorted(ended)):
            if not t.state.ended:
                continue  # rerun since: it will end again
            self._told.add(t.number)
            self._track_best(t)
            if self._sampler is not None and t.encoded:
                self._sampler.tell_record(self._record(t))
            if t.state == TrialState.FINISHED and metric and t.best is not None and metric.reached(t.best):
                self._sweep_changed = True
                self.store.set_sweep_state(
                    self.sweep_id,
                    SweepState.STOPPED,
                    allowed=[SweepState.RUNNING, SweepState.PAUSED],
                    reason=f"metric.target reached by trial {t.number} ({t.best:g})",
                )
        return True

    def _fill(self, sweep: Sweep) -> int:
        """Keep queued trials at the number of workers that would take them now: bayes asks
        as late as possible (one per idle worker) so each suggestion sees the freshest results.
        Returns how many trials it created (and queued)."""
        n_workers = max(self._workers(sweep.queue), self.local_workers)
        running = sweep.counts[TrialState.RUNNING]
        depth = n_workers - running if self.method == "bayes" else n_workers
        depth = max(1, min(depth, _MAX_DEPTH))
        # The lease makes this planner the only writer of new trials, so the numbers follow on
        # from the one read of the sweep (create_trial's compare-and-set still guards them).
        created = 0
        for number in range(sweep.created, sweep.created + depth - sweep.counts[TrialState.QUEUED]):
            if self._create(sweep, number, enqueue=True) is None:
                break
            created += 1
        return created

    def _workers(self, queue: str) -> int:
        """Workers listening on the queue, from RQ's registry, read every few seconds: with
        hundreds of workers it is one hash read per worker, and the count rarely changes."""
        now = time.monotonic()
        if now - self._workers_at > _WORKER_SCAN_EVERY:
            self._workers_at, self._n_workers = now, jobs.workers_on(self.store.r, queue)[0]
        return self._n_workers

    def _create(self, sweep: Sweep, number: int, *, enqueue: bool) -> int | None:
        if self._grid is not None:
            if number >= len(self._grid):
                self._exhausted = True
                return None
            params, encoded = self._grid[number], {}
        else:
            assert self._sampler is not None
            if sweep.cap is not None and number >= sweep.cap:
                self._exhausted = True
                return None
            suggestion = self._sampler.ask(number)
            params, encoded = suggestion.params, suggestion.encoded
        created = self.store.create_trial_at(self.sweep_id, number, params=params, encoded=encoded)
        result = created.status
        if result == "ok" and self._arrived is None and (created.before or "0-0") == self._events_from:
            # Nobody's event came between the last one read and this trial's own 'queued': step
            # over it rather than wake for it (a wake is a round trip and a round per trial).
            self._events_from = created.event or self._events_from
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
                    state=TrialState.QUEUED,
                    params=dict(params),
                    encoded=dict(encoded),
                    attempt=1,
                    job_id=job_id(self.sweep_id, number, 1),
                ),
            )
        return number

    def _enqueue(self, sweep: Sweep, trial: Trial) -> None:
        jobs.enqueue_trial(self.store.r, sweep, trial)

    def _reap(self, sweep: Sweep) -> bool:
        """Running attempts with a stale heartbeat lost their worker: queue them again (or end
        them as their pending stop request says). True if any was reaped."""
        if time.monotonic() - self._last_reap < self._idle_wait:
            return False
        self._last_reap = time.monotonic()
        cutoff = self.now() - sweep.settings.heartbeat_timeout
        stale = [n for n, beat in self.store.running_numbers(self.sweep_id).items() if beat < cutoff]
        for trial in self.store.trials(self.sweep_id, stale):
            result = self.store.expire(
                self.sweep_id,
                trial.number,
                attempt=trial.attempt,
                cutoff=cutoff,
                max_attempts=sweep.settings.max_attempts,
            )
            if result.status == "queued" and result.trial is not None and sweep.state == SweepState.RUNNING:
                self._enqueue(sweep, result.trial)
        if time.monotonic() - self._last_cleanup > 30:
            self._last_cleanup = time.monotonic()
            jobs.cleanup_started(self.store.r, sweep.queue)
        return bool(stale)

    def _recover(self, sweep: Sweep) -> None:
        """A queued trial whose job vanished (planner died between create and enqueue, a paused
        claim, a Redis restart) gets its job again; so does one whose job a worker took but never
        claimed (the worker died in between: RQ alone would keep it "started" forever). The
        attempt fence makes a duplicate harmless: only one claim of an attempt succeeds."""
        now = time.monotonic()
        if sweep.state.closed and sweep.counts[TrialState.QUEUED]:
            self._cancel_leftovers(sweep)
            return
        if sweep.state != SweepState.RUNNING or now - self._last_recovery < max(3.0, self.claim_window / 2):
            return
        self._last_recovery = now
        taken_since, self._taken_since = self._taken_since, {}
        for trial in self.store.trials(self.sweep_id, self.store.queued_numbers(self.sweep_id)):
            if trial.state != TrialState.QUEUED:
                continue
            where = jobs.job_state(self.store.r, trial.job_id, sweep.queue)
            if where == "taken":
                first = taken_since.get(trial.job_id, now)
                if now - first < self.claim_window:
                    self._taken_since[trial.job_id] = first
                    continue
            if where != "waiting":
                self._enqueue(sweep, trial)

    def _cancel_leftovers(self, sweep: Sweep) -> None:
        """Queued trials in a closed sweep can never start (claims refuse them) and would keep
        the planner waiting forever: whatever path left one there (a `stop`/`cancel` racing a
        requeue or an older server), it ends cancelled now, so a cancel always ends."""
        now = time.monotonic()
        numbers = self.store.queued_numbers(self.sweep_id)
        seen, self._leftovers = self._leftovers, {n: self._leftovers.get(n, now) for n in numbers}
        stuck = [n for n in numbers if now - seen.get(n, now) >= _LEFTOVER_GRACE]  # `cancel` goes first
        for trial in self.store.trials(self.sweep_id, stuck):
            if trial.state != TrialState.QUEUED:
                continue
            status = self.store.request_stop(
                self.sweep_id, trial.number, kind=StopKind.CANCEL, reason=f"sweep {sweep.state}"
            )
            if status == "cancelled":
                jobs.cancel_job(self.store.r, trial.job_id)

    def _check_failures(self, sweep: Sweep) -> None:
        """A broken program fails every trial: pause after the first few instead of burning the
        whole grid (unless a person resumed it after such a pause)."""
        limit = sweep.settings.fail_pause
        failed = sweep.failed
        finished = sweep.counts[TrialState.FINISHED] + sweep.counts[TrialState.PRUNED]
        if limit <= 0 or finished or failed < limit or sweep.failures_waived:
            return
        failures = [t for t in self.store.trials(self.sweep_id) if t.state in (TrialState.FAILED, TrialState.CRASHED)]
        why = next((t.reason for t in reversed(failures) if t.reason), "unknown")
        self.store.set_sweep_state(
            self.sweep_id,
            SweepState.PAUSED,
            allowed=[SweepState.RUNNING],
            reason=f"the first {failed} trials all failed (last: {why}); fix the program, then "
            f"`sweepq resume {self.sweep_id}`",
        )

    def _maybe_end(self, sweep: Sweep) -> bool:
        if sweep.active:
            return False
        if sweep.state == SweepState.RUNNING and self._exhausted:
            self.store.set_sweep_state(
                self.sweep_id, SweepState.FINISHED, allowed=[SweepState.RUNNING], reason="all trials done"
            )
            return True
        return sweep.state.closed

    def _wait_for_events(self, timeout: float) -> None:
        """Wait for the next events and keep them for the next round (no second read)."""
        after = self._arrived[-1][0] if self._arrived else self._events_from
        try:
            events, self._fresh = self.store.wait_events(self.sweep_id, after, timeout=timeout)
        except redis.RedisError:
            self._arrived = self._fresh = None  # read them again next round
            return
        self._arrived = events if self._arrived is None else self._arrived + events
