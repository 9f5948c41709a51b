"""A hardened RQ worker for sweep boxes, and the local workers `sweepq plan` starts.

`rq worker -w sweepq.worker.Worker sweepq` runs only sweepq's trial function with exactly (sweep
id, trial number, attempt): job data and meta are read as JSON (`sweepq.jobs.TrialJob`; nothing
is unpickled, not even in RQ's registry cleanup), a job naming another function, carrying a
callback, a dependency or a webhook is refused before anything runs, and the trial itself runs
only if its owner's signatures verify (`sweepq.trust`). Plain `rq worker` cannot read sweepq's
jobs (they are JSON), and with `--serializer json` it would run whatever function any job names:
anyone who can write to Redis could run code there.

It also loads sweepq before RQ forks a work horse for each job, which makes short trials several
times cheaper, and stops taking jobs after too many trials in a row failed on it (a bad GPU, a full
disk), so one broken box cannot burn a whole grid.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import io
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import redis
from redis.client import PubSubWorkerThread
from rq import Worker as _RQWorker
from rq.job import Job
from rq.queue import Queue
from rq.worker import WorkerStatus

# Loaded once here, before RQ forks a work horse per job: each horse would otherwise import
# them (numpy through the config's space) again, about 0.3-0.45 s per trial on a small machine.
from sweepq import command, config, jobs, runner, sdk, trust  # noqa: F401

__all__ = ["RestrictedPickle", "Worker", "spawn_local_workers", "stop_local_workers"]

_SAFE_GLOBALS = {
    ("datetime", "datetime"),
    ("datetime", "timezone"),
    ("datetime", "timedelta"),
    ("collections", "OrderedDict"),
}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name} from a job")


class RestrictedPickle:
    """RQ's pickle format without code execution. No longer used by sweepq (its jobs are JSON,
    `sweepq.jobs.SERIALIZER`); kept for code that named it."""

    dumps: ClassVar[Any] = partial(pickle.dumps, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def loads(data: bytes) -> Any:
        return _Unpickler(io.BytesIO(data)).load()


# Seconds between two plain worker heartbeats (RQ's own TTL for them is minutes).
_PLAIN_BEAT_EVERY = 1.0

# What a Redis restart or failover raises in a client: the worker waits it out.
_LOST = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class Worker(_RQWorker):
    """Runs sweepq trials only; stops after `SWEEPQ_MAX_FAIL_STREAK` failed trials in a row."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # `rq worker` builds its queues with its own (pickle) serializer and passes them in;
        # RQ's registry cleanup would read jobs through them. Rebuild them by name, ours.
        if args:
            args = (_queue_names(args[0]), *args[1:])
        elif "queues" in kwargs:
            kwargs["queues"] = _queue_names(kwargs["queues"])
        kwargs["serializer"] = jobs.SERIALIZER
        kwargs["job_class"] = jobs.TrialJob
        super().__init__(*args, **kwargs)
        self._lost_redis = False
        self._plain_beat_at = 0.0
        self._suspension_checked_at = -1e9
        self.fail_streak = 0
        self.max_fail_streak = int(os.environ.get("SWEEPQ_MAX_FAIL_STREAK", "5"))
        # A worker that could verify nothing would fail every trial it took: it does not start.
        try:
            keys = trust.Verifier.load().keys
        except trust.TrustError as err:
            raise SystemExit(f"sweepq.worker.Worker: {err}") from None
        if not keys:
            raise SystemExit(
                "sweepq.worker.Worker: no trusted signing key, so every trial would be refused; give "
                "this worker the sweep owner's public key (`sweepq key` prints it) in "
                f"{trust.ENV_TRUSTED_KEYS} or {trust.ENV_TRUSTED_KEYS_FILE}"
            )
        self.log.info("sweepq: trusting signing keys %s", ", ".join(keys))
        preload(os.environ.get("SWEEPQ_PRELOAD", ""))

    # --- riding out a Redis restart -----------------------------------------------------------
    # RQ's loop retries (with backoff) only inside its blocking pop: a connection error anywhere
    # else (the heartbeat after a job, maintenance, the suspension check, marking itself idle,
    # watching a horse) makes the worker quit, so a Redis restart at that moment would leave the
    # box without workers. The cheap calls log and go on; for the rest `work` waits for Redis
    # and starts RQ's loop again (the trial records, not RQ's, say what ran).

    def work(self, *args: Any, **kwargs: Any) -> bool:
        worked = False
        while True:
            self._lost_redis = False
            try:
                worked = bool(super().work(*args, **kwargs)) or worked
            except _LOST:
                self._lost_redis = True  # RQ's teardown could not reach Redis either
            if not self._lost_redis or self._stop_requested:
                return worked
            self.log.warning("sweepq: lost Redis mid-loop; waiting for it, then working on")
            if not self._wait_for_redis():
                return worked
            # Mark the stale registration dead, so that RQ's bootstrap may register this name again.
            with contextlib.suppress(redis.exceptions.RedisError):
                self.register_death()  # type: ignore[no-untyped-call]

    def _wait_for_redis(self) -> bool:
        """Until Redis answers (True) or a stop is requested (False)."""
        delay = 0.5
        while not self._stop_requested:
            try:
                self.connection.ping()
                return True
            except _LOST:
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        return False

    @contextlib.contextmanager
    def _marking_lost(self) -> Iterator[None]:
        """Let a lost connection end RQ's loop, remembering why, so `work` starts it again."""
        try:
            yield
        except _LOST:
            self._lost_redis = True
            raise

    @contextlib.contextmanager
    def riding_out(self, what: str) -> Iterator[None]:
        """Skip a step that a lost connection interrupted; the next blocking pop waits for Redis."""
        try:
            yield
        except _LOST as err:
            self.log.warning("sweepq: %s skipped, Redis unreachable (%s); waiting for it to come back", what, err)

    def dequeue_job_and_maintain_ttl(self, *args: Any, **kwargs: Any) -> Any:
        with self._marking_lost():
            return super().dequeue_job_and_maintain_ttl(*args, **kwargs)

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """RQ's worker heartbeat (three commands) in one round trip, and at most one a second:
        RQ beats three times between two jobs (after the job, before and after its blocking
        pop), each a few milliseconds apart, to extend a TTL of minutes. A beat with its own
        TTL or pipeline (the job's) always goes, and makes the next plain one go too."""
        with self.riding_out("heartbeat"):
            if pipeline is not None or timeout is not None:
                self._plain_beat_at = 0.0
                super().heartbeat(timeout, pipeline=pipeline)
                return
            at = time.monotonic()
            if at - self._plain_beat_at < _PLAIN_BEAT_EVERY:
                return
            with self.connection.pipeline(transaction=False) as pipe:
                super().heartbeat(None, pipeline=pipe)
                pipe.execute()
            self._plain_beat_at = at

    def set_state(self, state: str, pipeline: Any = None) -> None:
        """RQ marks a worker idle twice between two jobs: the second write is skipped."""
        if pipeline is None and state == getattr(self, "_state", None) and state == WorkerStatus.IDLE:
            return
        super().set_state(state, pipeline)

    def unsubscribe(self) -> None:
        """RQ's, with its pubsub thread told to stop *before* the UNSUBSCRIBE goes out: the
        reply is what wakes the thread from its 60 s read, and when it came first the thread
        read it, looped and blocked again, so every other warm shutdown took RQ's 1 s join
        timeout (a local sweep's `plan` ended a second late). From redis-py 8.2 `stop()` also
        joins the thread, with no bound by default: before the UNSUBSCRIBE that join waits out the
        whole read, so the flag is cleared with a zero-second join there."""
        if self.pubsub_thread:
            self.log.info("Worker %s: unsubscribing from channel %s", self.name, self.pubsub_channel_name)
            _stop_without_join(self.pubsub_thread)
            with self.riding_out("unsubscribe"):
                self.pubsub.unsubscribe()
            self.pubsub_thread.join(timeout=1)
            self.pubsub.close()

    def maintain_heartbeats(self, *args: Any, **kwargs: Any) -> None:
        with self.riding_out("job heartbeat"):
            super().maintain_heartbeats(*args, **kwargs)

    def run_maintenance_tasks(self) -> None:
        with self.riding_out("maintenance"):
            super().run_maintenance_tasks()  # type: ignore[no-untyped-call]

    def check_for_suspension(self, burst: bool) -> None:
        """RQ asks Redis before every job whether `rq suspend` was run: once a second is soon
        enough for an operator's command, and saves a round trip per trial."""
        at = time.monotonic()
        if at - self._suspension_checked_at < _PLAIN_BEAT_EVERY:
            return
        with self.riding_out("suspension check"):
            super().check_for_suspension(burst)
        self._suspension_checked_at = time.monotonic()

    def execute_job(self, job: Job, queue: Queue) -> None:
        why = jobs.job_refusal(job)
        if why is not None:
            self.log.error("refusing job %s: %s", job.id, why)
            self.handle_job_failure(job, queue=queue, exc_string=f"refused by sweepq.worker.Worker: {why}")
            return
        with self._marking_lost():
            super().execute_job(job, queue)
        self._count_failure(job)

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        """In the forked horse, first freeze what it inherited: its garbage collections then
        skip the worker's heap (a gen-2 pass over it cost 20-40 ms per trial, and wrote to
        every copy-on-write page it walked). Frozen in the child, so the worker never leaks."""
        gc.freeze()
        super().main_work_horse(job, queue)

    def _count_failure(self, job: Job) -> None:
        from sweepq.store import Store

        sweep_id, number = job.args[0], job.args[1]
        try:
            state = Store(self.connection).trial(sweep_id, number).state
        except Exception:  # noqa: BLE001 - bookkeeping must never stop the worker
            return
        self._count_state(state)

    def _count_state(self, state: str) -> None:
        self.fail_streak = self.fail_streak + 1 if state in ("failed", "crashed") else 0
        if self.max_fail_streak and self.fail_streak >= self.max_fail_streak:
            self.log.error(
                "sweepq: %d trials in a row failed on this worker (bad GPU? full disk?); "
                "it stops taking jobs. Check the box, then start the worker again.",
                self.fail_streak,
            )
            self.request_stop(None, None)  # type: ignore[no-untyped-call]


def _stop_without_join(thread: PubSubWorkerThread) -> None:
    """Clear a pubsub thread's running flag and return at once, on every supported redis-py:
    before 8.2 `stop()` only cleared it; from 8.2 it takes a join timeout (None: unbounded)."""
    stop: Callable[..., None] = thread.stop  # typed by whichever redis-py is installed
    if "timeout" in inspect.signature(stop).parameters:
        stop(timeout=0)
    else:
        stop()


def _queue_names(queues: Any) -> list[str]:
    items = [queues] if isinstance(queues, (str, Queue)) else list(queues)
    return [q.name if isinstance(q, Queue) else str(q) for q in items]


def preload(modules: str) -> None:
    """Import `SWEEPQ_PRELOAD` (comma-separated modules, e.g. `torch,transformers`) in the worker,
    before any horse is forked: every horse, the first and each replacement, starts with them
    loaded (a torch import costs seconds). Importing is safe with fork; initialising CUDA is not,
    so preload modules that do not touch the GPU at import (torch does not)."""
    import importlib

    for name in filter(None, (m.strip() for m in modules.split(","))):
        try:
            importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 - a bad preload must not stop the worker
            print(f"sweepq: SWEEPQ_PRELOAD: cannot import {name}: {err}", file=sys.stderr)


def local_worker_name(index: int) -> str:
    return f"{os.uname().nodename}-{os.getpid()}-{index}"


def stop_local_workers(procs: list[subprocess.Popen[bytes]], r: redis.Redis, *, grace: float) -> None:
    """Warm shutdown (a running trial is requeued within the grace period), then SIGKILL for a
    worker that still hangs (rq 3 sometimes never returns from closing its pubsub connection),
    and its registration removed so rq-dashboard and queue depth do not count a dead worker."""
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace + 5
    for index, proc in enumerate(procs):
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            continue
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        with contextlib.suppress(Exception):
            dead = _RQWorker.find_by_key(f"rq:worker:{local_worker_name(index)}", connection=r)
            if dead is not None:
                dead.register_death()  # type: ignore[no-untyped-call]


def local_worker_class(warm: bool | None = None) -> str:
    """Warm workers (one reused work horse) unless `SWEEPQ_WARM=0` opts out to a horse per trial."""
    if warm is None:
        warm = os.environ.get("SWEEPQ_WARM", "1").strip().lower() not in ("0", "false", "no", "off")
    return "sweepq.warm.WarmWorker" if warm else "sweepq.worker.Worker"


def spawn_local_workers(
    url: str, queue: str, n: int, *, log_dir: Path, env: dict[str, str] | None = None, warm: bool | None = None
) -> list[subprocess.Popen[bytes]]:
    """Start `n` real `rq worker` processes for a local sweep; their logs go to `log_dir`.
    `env` is added to theirs (the owner's public key, `trust.local_worker_env`); the owner's
    secret is never passed on."""
    from sweepq.server import rq_worker_args

    log_dir.mkdir(parents=True, exist_ok=True)
    # SWEEPQ_REDIS_URL is read by `-c sweepq.rq_settings` (sentinel URLs)
    child_env = trust.scrubbed_environ({**(env or {}), "SWEEPQ_REDIS_URL": url})
    worker_class = local_worker_class(warm)
    procs = []
    for i in range(n):
        log = open(log_dir / f"worker-{i}.log", "ab")  # noqa: SIM115 - owned by the child
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "rq.cli",
                    "worker",
                    *rq_worker_args(url),
                    "-w",
                    worker_class,
                    "--name",
                    local_worker_name(i),
                    queue,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=child_env,
            )
        )
        log.close()
    return procs
