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

from sweepq.store import Trial

__all__ = ["RUN_TRIAL", "cancel_job", "enqueue_trial", "job_state", "workers_on"]

RUN_TRIAL = "sweepq.runner.run_trial"


def enqueue_trial(r: redis.Redis, *, queue: str, trial: Trial, time_limit: float = 0.0, grace: float = 10.0) -> Job:
    """Enqueue the trial's current attempt. RQ's 180 s default timeout must never kill a trial,
    so the job has none unless the sweep sets a time limit (then the runner enforces it and RQ's
    limit is only a backstop)."""
    timeout = -1 if time_limit <= 0 else int(time_limit + 4 * grace + 120)
    params = json.dumps(trial.params, default=str)
    return Queue(queue, connection=r).enqueue_call(
        RUN_TRIAL,
        args=(trial.sweep_id, trial.number, trial.attempt),
        job_id=trial.job_id,
        timeout=timeout,
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
    workers: list[Any] = Worker.all(queue=Queue(queue, connection=r))
    idle = sum(1 for w in workers if w.get_state() in ("idle", "started", "suspended") and not w.get_current_job_id())
    return len(workers), idle
