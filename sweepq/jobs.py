"""The RQ side of a trial: one job per attempt, with a readable description and meta.

The job names its function by string (`sweepq.runner.run_trial`), so the planner never imports
the runner, and its arguments are plain strings and ints, which the restricted unpickler of
`sweepq.worker.Worker` accepts.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import redis
from rq import Queue, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from sweepq.model import Sweep, Trial

__all__ = [
    "RUN_TRIAL",
    "cancel_job",
    "cleanup_started",
    "enqueue_trial",
    "job_state",
    "worker_shutting_down",
    "workers_on",
]

RUN_TRIAL = "sweepq.runner.run_trial"


def enqueue_trial(r: redis.Redis, sweep: Sweep, trial: Trial) -> Job:
    """Enqueue the trial's current attempt: the one path every caller takes (planner, runner,
    rerun), so the job's id, timeout and description are derived in one place."""
    params = json.dumps(trial.params, default=str)
    return Queue(sweep.queue, connection=r).enqueue_call(
        RUN_TRIAL,
        args=(trial.sweep_id, trial.number, trial.attempt),
        job_id=trial.job_id,
        timeout=sweep.settings.job_timeout,
        result_ttl=3600,
        failure_ttl=7 * 86400,
        description=f"sweep {trial.sweep_id} trial {trial.number} (attempt {trial.attempt}) {params[:200]}",
        meta={
            "sweep": trial.sweep_id,
            "trial": trial.number,
            "attempt": trial.attempt,
            "params": trial.params,
        },
    )


def job_state(r: redis.Redis, job_id: str, queue: str) -> str:
    """Where RQ holds a trial's job: "waiting" in the queue, "taken" by a worker (started, or
    popped and not started yet), or "gone" (missing, or already ended)."""
    try:
        status = Job.fetch(job_id, connection=r).get_status(refresh=False)
    except NoSuchJobError:
        return "gone"
    if status == JobStatus.STARTED:
        return "taken"
    if status in (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED):
        in_queue = Queue(queue, connection=r).get_job_position(job_id) is not None
        return "waiting" if in_queue or status != JobStatus.QUEUED else "taken"
    return "gone"


def cancel_job(r: redis.Redis, job_id: str) -> None:
    """Take a queued job out of RQ's queue (a started one is stopped through the trial)."""
    with contextlib.suppress(NoSuchJobError, Exception):
        job = Job.fetch(job_id, connection=r)
        if job.get_status(refresh=False) in (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED):
            job.cancel()


def workers_on(r: redis.Redis, queue: str) -> tuple[int, int]:
    """(workers listening on the queue, of which idle)."""
    # RQ's Worker objects raise their connection's socket timeout to ~7 minutes (for their own
    # blocking dequeue) by editing the pool's kwargs: keep ours, so a partition cannot hang us.
    kwargs = r.connection_pool.connection_kwargs
    timeout = kwargs.get("socket_timeout")
    try:
        workers: list[Any] = Worker.all(queue=Queue(queue, connection=r))
    finally:
        kwargs["socket_timeout"] = timeout
    idle = sum(1 for w in workers if w.get_state() in ("idle", "started", "suspended") and not w.get_current_job_id())
    return len(workers), idle


def cleanup_started(r: redis.Redis, queue: str) -> None:
    """RQ's own cleanup of jobs whose worker died (they move to the failed registry)."""
    from rq.registry import StartedJobRegistry

    with contextlib.suppress(Exception):
        StartedJobRegistry(queue=Queue(queue, connection=r)).cleanup()


def worker_shutting_down(r: redis.Redis, worker_name: str) -> bool:
    """Has our rq worker been asked for a warm shutdown (SIGTERM)? Then its running trial is
    requeued. RQ keeps this in its worker hash; this is the one place that reads it."""
    return bool(r.hget(f"rq:worker:{worker_name}", "shutdown_requested_date"))
