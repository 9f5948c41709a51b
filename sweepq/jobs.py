"""The RQ side of a trial: one job per attempt, with a readable description and meta.

The job names its function by string (`sweepq.runner.run_trial`), so the planner never imports
the runner, and its arguments are plain strings and ints. Every RQ job sweepq writes or reads
goes through `TrialJob` and JSON (RQ's `JSONSerializer`): whatever someone planted in a job's
data or meta, no sweepq process unpickles it, and no callback or webhook a job names is ever
called. `job_refusal` is what the hardened worker checks before it runs a job.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import redis
from rq import Queue, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from sweepq.model import Sweep, Trial

__all__ = [
    "RUN_TRIAL",
    "SERIALIZER",
    "TrialJob",
    "cancel_job",
    "cleanup_started",
    "enqueue_trial",
    "fetch_job",
    "job_refusal",
    "job_state",
    "trial_queue",
    "worker_shutting_down",
    "workers_on",
]

RUN_TRIAL = "sweepq.runner.run_trial"
SERIALIZER = JSONSerializer


class TrialJob(Job):
    """RQ's job without the parts that call code a job names: sweepq sets no callbacks and no
    webhooks, so any a job carries was forged. RQ calls them from the worker (after a job, and
    when it cleans up a dead worker's jobs) and from the planner's registry cleanup."""

    @property
    def success_callback(self) -> None:
        return None

    @property
    def failure_callback(self) -> None:
        return None

    @property
    def stopped_callback(self) -> None:
        return None

    def send_webhooks(self, status: str | JobStatus, *, exc_string: str | None = None) -> None:
        return None


def trial_queue(r: redis.Redis, name: str) -> Queue:
    """An RQ queue that reads and writes jobs as `TrialJob`s in JSON."""
    return Queue(name, connection=r, serializer=SERIALIZER, job_class=TrialJob)


def fetch_job(r: redis.Redis, job_id: str) -> Job:
    return TrialJob.fetch(job_id, connection=r, serializer=SERIALIZER)


def job_refusal(job: Job) -> str | None:
    """Why a hardened worker must not run `job`, or None: it must call the trial function with
    exactly (sweep id, trial number, attempt) and nothing else (no callbacks, dependencies or
    webhooks, which sweepq never sets)."""
    try:
        name, instance, args, kwargs = job.func_name, job.instance, job.args, job.kwargs
    except Exception as err:  # noqa: BLE001 - unreadable job data is refused, not run
        return f"unreadable job data ({type(err).__name__})"
    if name != RUN_TRIAL:
        return f"it names {str(name)[:200]!r}, not {RUN_TRIAL}"
    if instance is not None or kwargs:
        return "it has an instance or keyword arguments"
    types = [type(a) for a in args] if isinstance(args, (list, tuple)) else []
    if types != [str, int, int]:
        return "its arguments are not (sweep id, trial number, attempt)"
    forged = [
        what
        for what, value in (
            ("success callback", job._success_callback_name),
            ("failure callback", job._failure_callback_name),
            ("stopped callback", job._stopped_callback_name),
            ("dependency", job._dependency_ids),
            ("webhook", job.webhooks),
        )
        if value
    ]
    if forged:
        return f"it carries a {', '.join(forged)} (sweepq sets none)"
    return None


def enqueue_trial(r: redis.Redis, sweep: Sweep, trial: Trial) -> Job:
    """Enqueue the trial's current attempt: the one path every caller takes (planner, runner,
    rerun), so the job's id, timeout and description are derived in one place."""
    params = json.dumps(trial.params, default=str)
    queue = trial_queue(r, sweep.queue)
    job = queue.create_job(
        RUN_TRIAL,
        args=(trial.sweep_id, trial.number, trial.attempt),
        job_id=trial.job_id,
        timeout=sweep.settings.job_timeout,
        # The trial's record holds its outcome; RQ deletes a finished job at once instead of
        # writing a result and a finished-registry entry nobody reads (failed jobs are kept).
        result_ttl=0,
        failure_ttl=7 * 86400,
        description=f"sweep {trial.sweep_id} trial {trial.number} (attempt {trial.attempt}) {params[:200]}",
        meta={
            "sweep": trial.sweep_id,
            "trial": trial.number,
            "attempt": trial.attempt,
            "params": trial.params,
        },
    )
    # One transaction: RQ's enqueue_call sends the queue's registration and the job apart.
    with r.pipeline() as pipe:
        job = queue.enqueue_job(job, pipeline=pipe)
        pipe.execute()
    return job


def job_state(r: redis.Redis, job_id: str, queue_name: str) -> str:
    """Where RQ holds a trial's job: "waiting" in the queue, "taken" by a worker (started, or
    popped and not started yet), or "gone" (missing, or already ended)."""
    try:
        status = fetch_job(r, job_id).get_status(refresh=False)
    except NoSuchJobError:
        return "gone"
    if status == JobStatus.STARTED:
        return "taken"
    if status in (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED):
        in_queue = trial_queue(r, queue_name).get_job_position(job_id) is not None
        return "waiting" if in_queue or status != JobStatus.QUEUED else "taken"
    return "gone"


def cancel_job(r: redis.Redis, job_id: str) -> None:
    """Take a queued job out of RQ's queue (a started one is stopped through the trial)."""
    with contextlib.suppress(NoSuchJobError, Exception):
        job = fetch_job(r, job_id)
        if job.get_status(refresh=False) in (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED):
            job.cancel()


def workers_on(r: redis.Redis, queue_name: str) -> tuple[int, int]:
    """(workers listening on the queue, of which idle)."""
    # RQ's Worker objects raise their connection's socket timeout to ~7 minutes (for their own
    # blocking dequeue) by editing the pool's kwargs: keep ours, so a partition cannot hang us.
    kwargs = r.connection_pool.connection_kwargs
    timeout = kwargs.get("socket_timeout")
    try:
        workers: list[Any] = Worker.all(queue=trial_queue(r, queue_name))
    finally:
        kwargs["socket_timeout"] = timeout
    idle = sum(1 for w in workers if w.get_state() in ("idle", "started", "suspended") and not w.get_current_job_id())
    return len(workers), idle


def cleanup_started(r: redis.Redis, queue_name: str) -> None:
    """RQ's own cleanup of jobs whose worker died (they move to the failed registry)."""
    from rq.registry import StartedJobRegistry

    with contextlib.suppress(Exception):
        StartedJobRegistry(queue=trial_queue(r, queue_name), job_class=TrialJob).cleanup()


def worker_shutting_down(r: redis.Redis, worker_name: str) -> bool:
    """Has our rq worker been asked for a warm shutdown (SIGTERM)? Then its running trial is
    requeued. RQ keeps this in its worker hash; this is the one place that reads it."""
    return bool(r.hget(f"rq:worker:{worker_name}", "shutdown_requested_date"))
