"""A hardened RQ worker for sweep boxes, and the local workers `sweepq plan` starts.

`rq worker -w sweepq.worker.Worker sweepq` runs only sweepq's trial function: job data is read
with an unpickler that resolves no global at all (our jobs hold only strings and numbers), so a
forged job naming `os.system` is refused before anything runs. Plain `rq worker` also runs
sweepq's jobs, but executes whatever function any job names: anyone who can write to Redis can
run code there.

It also loads sweepq before RQ forks a work horse for each job, which makes short trials several
times cheaper, and stops taking jobs after too many trials in a row failed on it (a bad GPU, a full
disk), so one broken box cannot burn a whole grid.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from rq import Worker as _RQWorker
from rq.job import Job
from rq.queue import Queue

# Loaded once here, before RQ forks a work horse per job: each horse would otherwise import
# them (numpy through the config's space) again, about 0.3-0.45 s per trial on a small machine.
from sweepq import command, config, runner, sdk  # noqa: F401
from sweepq.jobs import RUN_TRIAL

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
    """RQ's pickle format (so plain workers and ours share a queue) without code execution."""

    dumps: ClassVar[Any] = partial(pickle.dumps, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def loads(data: bytes) -> Any:
        return _Unpickler(io.BytesIO(data)).load()


class Worker(_RQWorker):
    """Runs sweepq trials only; stops after `SWEEPQ_MAX_FAIL_STREAK` failed trials in a row."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["serializer"] = RestrictedPickle
        super().__init__(*args, **kwargs)
        self.fail_streak = 0
        self.max_fail_streak = int(os.environ.get("SWEEPQ_MAX_FAIL_STREAK", "5"))

    def execute_job(self, job: Job, queue: Queue) -> None:
        try:
            name = job.func_name
        except Exception as err:  # noqa: BLE001 - unreadable job data is refused, not run
            name = f"<unreadable: {err}>"
        if name != RUN_TRIAL:
            self.log.error("refusing job %s: it names %s, not %s", job.id, name, RUN_TRIAL)
            self.handle_job_failure(job, queue=queue, exc_string=f"refused by sweepq.worker.Worker: {name}")
            return
        super().execute_job(job, queue)
        self._count_failure(job)

    def _count_failure(self, job: Job) -> None:
        from sweepq.store import Store

        sweep_id, number = job.args[0], job.args[1]
        try:
            state = Store(self.connection).trial(sweep_id, number).state
        except Exception:  # noqa: BLE001 - bookkeeping must never stop the worker
            return
        self.fail_streak = self.fail_streak + 1 if state in ("failed", "crashed") else 0
        if self.max_fail_streak and self.fail_streak >= self.max_fail_streak:
            self.log.error(
                "sweepq: %d trials in a row failed on this worker (bad GPU? full disk?); "
                "it stops taking jobs. Check the box, then start the worker again.",
                self.fail_streak,
            )
            self.request_stop(None, None)  # type: ignore[no-untyped-call]


def local_worker_name(index: int) -> str:
    return f"{os.uname().nodename}-{os.getpid()}-{index}"


def stop_local_workers(procs: list[subprocess.Popen[bytes]], r: Any, *, grace: float) -> None:
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


def spawn_local_workers(url: str, queue: str, n: int, *, log_dir: Path) -> list[subprocess.Popen[bytes]]:
    """Start `n` real `rq worker` processes for a local sweep; their logs go to `log_dir`."""
    from sweepq.server import rq_worker_args

    log_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SWEEPQ_REDIS_URL": url}  # read by `-c sweepq.rq_settings` (sentinel URLs)
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
                    "sweepq.worker.Worker",
                    "--name",
                    local_worker_name(i),
                    queue,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
            )
        )
        log.close()
    return procs
