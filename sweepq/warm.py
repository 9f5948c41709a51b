"""The warm worker: one work horse per worker, reused trial after trial.

`rq worker -w sweepq.warm.WarmWorker QUEUE` (what `sweepq plan --workers N` starts unless
`SWEEPQ_WARM=0`) forks its work horse once and feeds it trials over a socket pair, the way Ray
reuses an actor. A function-mode trial (`program: train:main`, or `def train(config)`) then runs
in a process that already imported the user's module, torch included, holds the data the
module cached and the CUDA context the previous trial created: the import and the CUDA start
are paid once per horse, not per trial. Subprocess-mode trials run in the warm horse too (no
fork, no Redis handshake per trial), but their program still starts its own interpreter.

What stays as with RQ's horse per job (`sweepq.worker.Worker`, the opt-out):
- The horse leads its own process group and is a child subreaper: a stop or a prune ends the
  trial (the program's group and any daemon it left are killed, a function gets `Stopped`),
  not the horse or the worker.
- A function that does not stop within the sweep's grace makes the horse exit (the runner
  records the trial failed first); the worker reaps it, fails the RQ job as RQ would, kills
  whatever the horse left and forks a fresh horse for the next trial.
- The horse has a parent-death signal armed: a `kill -9` of the worker kills the horse, its
  programs and their daemons.
- Attempts are fenced by the same claim/finish scripts: the horse runs `runner.execute`.
- The worker recycles its horse after `SWEEPQ_WARM_MAX_TRIALS` trials (default 100, 0 = never)
  or when the horse's resident memory passes `SWEEPQ_WARM_MAX_GIB` (default 0 = no limit), so a
  leak in the user's code cannot grow for ever.

RQ's own bookkeeping (started registry, job status, worker heartbeats, stop-job commands) stays
in the worker, as SimpleWorker does it; the horse only runs the trial. The horse never reads job
data: the worker, which refused anything that is not a sweepq trial, sends it the trial's three
plain arguments. Job callbacks are never run for trials.

CUDA and fork: the horse is the only process that may touch CUDA. Nothing in the worker may
initialise CUDA before the fork (importing torch is fine; `torch.cuda.*` calls are not), or
every horse inherits a context it cannot use. Inside the horse, fork without exec after CUDA was
initialised is unsafe (use torch's `spawn`/`forkserver` start methods for workers that use the
GPU; DataLoader workers that only load data are fine). Subprocess-mode programs exec, so they
are always safe.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import random
import signal
import socket
import sys
import time
import traceback
from typing import Any

from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.utils import now
from rq.worker import WorkerStatus

from sweepq import reaper
from sweepq.worker import Worker

__all__ = ["WarmWorker"]

_MAX_LINE = 1 << 20


class _Horse:
    """The worker's side of one warm horse: its pid, its socket and how many trials it ran."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid, self.sock = pid, sock
        self.reader = sock.makefile("rb")
        self.trials = 0

    def send(self, message: dict[str, Any]) -> None:
        self.sock.sendall(json.dumps(message).encode() + b"\n")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.reader.close()
        with contextlib.suppress(OSError):
            self.sock.close()

    def rss_gib(self) -> float:
        try:
            with open(f"/proc/{self.pid}/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30
        except (OSError, ValueError, IndexError):
            return 0.0


class WarmWorker(Worker):
    """sweepq's hardened worker with one long-lived work horse (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_trials = int(os.environ.get("SWEEPQ_WARM_MAX_TRIALS", "100"))
        self.max_gib = float(os.environ.get("SWEEPQ_WARM_MAX_GIB", "0"))
        self._horse: _Horse | None = None
        self._preparing: Any = None  # the open transaction of `prepare_execution`
        # The last trial's RQ bookkeeping, done while the horse runs the next one (or before
        # the worker waits for a job): (job, queue, execution, the horse's reply).
        self._unsettled: tuple[Job, Queue, Any, dict[str, Any]] | None = None
        self._trying = False  # in the non-blocking pop that comes first after a trial
        self._beat_owed = False
        self.horses_started = 0
        self.last_state: str | None = None  # the state the horse's last trial ended in
        # Orphans of a horse that died (its programs' daemons) become ours, to be killed.
        reaper.become_subreaper()

    # --- RQ's hooks: Worker.execute_job calls prepare_execution, these two, then set_state ---

    def prepare_execution(self, job: Job) -> Execution:
        """RQ's, with its transaction left open: `fork_work_horse` adds the job's own
        preparation and sends both in one round trip (RQ sends two, one after the other)."""
        pipe = self.connection.pipeline()
        execution = Execution.create(job, self.get_heartbeat_ttl(job), pipeline=pipe, worker_name=self.name)
        self.executions[execution.id] = execution
        self.set_state(WorkerStatus.BUSY, pipeline=pipe)
        self._preparing = pipe
        return execution

    def fork_work_horse(self, job: Job, queue: Queue) -> None:
        os.environ["RQ_WORKER_ID"] = self.name
        os.environ["RQ_JOB_ID"] = job.id
        pipe, self._preparing = self._preparing, None
        horse = self._horse if self._horse is not None else self._start_horse()
        self._horse_pid = horse.pid
        if pipe is None:
            self.prepare_job_execution(job, remove_from_intermediate_queue=len(self.queues) == 1)
        else:
            with pipe:  # RQ's prepare_job_execution, in the execution's transaction
                ttl = self.get_heartbeat_ttl(job)
                self.heartbeat(ttl, pipeline=pipe)
                job.heartbeat(now(), ttl, pipeline=pipe)
                job.prepare_for_execution(self.name, pipeline=pipe)
                pipe.persist(job.key)
                if len(self.queues) == 1:
                    pipe.lrem(queue.intermediate_queue_key, 1, job.id)
                pipe.execute()
        job.started_at = now()
        sweep_id, number, attempt = job.args[0], int(job.args[1]), int(job.args[2])
        try:
            horse.send({"job": job.id, "sweep": str(sweep_id), "number": number, "attempt": attempt})
        except OSError:
            pass  # the horse is gone: monitor_work_horse sees it and fails the job
        self._settle_previous()  # while the horse claims and starts this one

    def monitor_work_horse(self, job: Job, queue: Queue, execution: Any) -> None:
        horse = self._horse
        assert horse is not None
        self.last_state = None
        reply = self._wait_reply(job, horse, execution)
        self._horse_pid = 0
        self.executions.pop(execution.id, None)
        if reply is None:
            self._horse_died(job, queue, execution)
            return
        horse.trials += 1
        job.ended_at = now()
        self.last_state = str(reply.get("ok", "")) or None
        # RQ's bookkeeping of the job waits: the next job goes to the horse first (see
        # `dequeue_job_and_maintain_ttl`), and this one is settled while the horse runs it.
        self._unsettled = (job, queue, execution, reply)
        if (self.max_trials and horse.trials >= self.max_trials) or (self.max_gib and horse.rss_gib() >= self.max_gib):
            self.log.info("sweepq: recycling work horse %s after %d trials", horse.pid, horse.trials)
            self._stop_horse()

    def _settle_previous(self) -> None:
        unsettled, self._unsettled = self._unsettled, None
        if unsettled is None:
            return
        # The trial's record already holds its outcome: if Redis went away just now, RQ's own
        # bookkeeping of the job is what is lost (its registry cleanup settles it), not the worker.
        with self.riding_out("job bookkeeping"):
            self._settle_job(*unsettled)
        if self._beat_owed:
            self._beat_owed = False
            self.heartbeat()

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """The beat RQ sends after every job waits with the job's bookkeeping (off the path
        from one trial to the next)."""
        if timeout is None and pipeline is None and self._unsettled is not None:
            self._beat_owed = True
            return
        super().heartbeat(timeout, pipeline)

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> Any:
        """After a trial, first a pop that does not block: a job waiting goes to the horse at
        once, and the last trial's bookkeeping is done while the horse runs it (its ~1 ms and a
        round trip were between every two trials). With nothing waiting, the bookkeeping is
        done now, before the worker blocks (and marks itself idle)."""
        if self._unsettled is not None:
            if not self._stop_requested:
                self._trying = True
                try:
                    found = super().dequeue_job_and_maintain_ttl(None, max_idle_time)
                finally:
                    self._trying = False
                if found is not None:
                    return found
            self._settle_previous()
        if self._stop_requested:
            # A warm shutdown asked while the worker still counted as busy (RQ then only sets
            # this flag): it must not block in the pop now; None ends RQ's loop.
            return None
        return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)

    def set_state(self, state: str, pipeline: Any = None) -> None:
        """Not idle between two trials: the worker is only idle when it waits for a job (the
        mark after a trial, and the one of the non-blocking pop, wait for the bookkeeping)."""
        if state == WorkerStatus.IDLE and pipeline is None and (self._trying or self._unsettled is not None):
            return
        super().set_state(state, pipeline)

    def _count_failure(self, job: Job) -> None:
        """The horse told us how its trial ended: no read of the trial record needed."""
        if self.last_state is None:
            super()._count_failure(job)
            return
        state, self.last_state = self.last_state, None
        self._count_state(state)

    def kill_horse(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self._horse is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._horse.pid, sig)

    def wait_for_horse(self) -> tuple[int | None, int | None, Any]:
        if self._horse is None:
            return None, None, None
        with contextlib.suppress(ChildProcessError):
            pid, status, rusage = os.wait4(self._horse.pid, 0)
            self._forget_horse()
            return pid, status, rusage
        return None, None, None

    def teardown(self) -> None:
        if not self.is_horse:
            self._settle_previous()
            self._stop_horse()
        super().teardown()  # type: ignore[no-untyped-call]

    # --- the horse's life --------------------------------------------------------------------

    def _start_horse(self) -> _Horse:
        from sweepq.server import url_of

        url = url_of(self.connection)
        parent_sock, child_sock = socket.socketpair()
        pid = os.fork()
        if pid == 0:  # the horse
            code = 1
            try:
                # What the horse inherited is never collected there: its collections skip the
                # worker's heap, whose copy-on-write pages stay shared.
                gc.freeze()
                parent_sock.close()
                code = _horse_main(child_sock, url, self.name)
            except BaseException:  # noqa: BLE001 - a horse never returns into the worker's loop
                traceback.print_exc()
            finally:
                os._exit(code)
        child_sock.close()
        self._horse = _Horse(pid, parent_sock)
        self.horses_started += 1
        self.log.info("sweepq: warm work horse %s started", pid)
        return self._horse

    def _wait_reply(self, job: Job, horse: _Horse, execution: Any) -> dict[str, Any] | None:
        """Wait for the horse's answer, beating for RQ meanwhile; None if the horse died (or
        passed RQ's own job timeout, RQ's backstop, and was killed)."""
        import select

        while True:
            try:
                ready, _, _ = select.select([horse.sock], [], [], self.job_monitoring_interval)
            except InterruptedError:
                ready = []
            if ready:
                try:
                    line = horse.reader.readline(_MAX_LINE)
                    return dict(json.loads(line)) if line else None
                except (OSError, ValueError):
                    return None
            working = (now() - job.started_at).total_seconds() if job.started_at else 0.0
            if job.timeout not in (None, -1) and working > float(job.timeout or 0) + 60:
                self.kill_horse()
                return None
            self.maintain_heartbeats(job, execution)

    def _settle_job(self, job: Job, queue: Queue, execution: Any, reply: dict[str, Any]) -> None:
        """RQ's end-of-job bookkeeping, done here as SimpleWorker does it (no callbacks)."""
        job.ended_at = job.ended_at or now()
        if "error" in reply:
            job._status = JobStatus.FAILED
            self.handle_job_failure(
                job,
                queue=queue,
                started_job_registry=queue.started_job_registry,
                exc_string=str(reply["error"]),
                execution=execution,
            )
            return
        job._result = reply.get("ok")
        job._status = JobStatus.FINISHED
        if not _plain(job, self.default_result_ttl):
            self.handle_job_success(
                job=job, queue=queue, started_job_registry=queue.started_job_registry, execution=execution
            )
            return
        # RQ's success path for a job with nothing to keep and nothing depending on it: RQ's
        # own takes about eight round trips (a WATCH, the dependents, the job's status and its
        # executions read back one by one to delete them); this is one transaction.
        from rq.results import Result

        took = job.ended_at - (job.started_at or job.ended_at)
        with self.connection.pipeline() as pipe:
            self.increment_successful_job_count(pipeline=pipe)
            self.increment_total_working_time(took, pipe)
            self.cleanup_execution(job, pipeline=pipe, execution=execution)
            result_key = Result.get_key(job.id)  # type: ignore[no-untyped-call]
            pipe.delete(job.key, job.dependents_key, job.dependencies_key, result_key, _executions_key(job.id))
            pipe.execute()
        self.log.info("Successfully completed job %s in %ss on worker %s", job.id, took, self.name)

    def _horse_died(self, job: Job, queue: Queue, execution: Any) -> None:
        """The horse exited mid-trial (past its grace, killed, crashed): fail the job as RQ does
        for a dead horse, kill what it left, and let the next trial fork a fresh one."""
        horse = self._horse
        assert horse is not None
        self._settle_previous()
        self.kill_horse()  # it may be hung rather than dead (RQ's job timeout)
        retpid, status, rusage = self.wait_for_horse()
        reaper.end_children(0.0, exclude=self._other_children(), term=False)
        job.ended_at = now()
        if self._stopped_job_id == job.id:
            self._handle_stopped_job(job, queue, execution)
            return
        with contextlib.suppress(Exception):
            if job.get_status() in (JobStatus.FINISHED, JobStatus.FAILED):
                return
        signal_msg = f" (signal {os.WTERMSIG(status)})" if status and os.WIFSIGNALED(status) else ""
        exc = f"Work-horse terminated unexpectedly; waitpid returned {status}{signal_msg}; "
        self.log.warning("Worker %s: job %s failed (%s)", self.name, job.id, exc)
        self.handle_work_horse_killed(job, retpid, status, rusage)  # type: ignore[no-untyped-call]
        self.handle_job_failure(job, queue=queue, exc_string=exc, execution=execution)

    def _other_children(self) -> tuple[int, ...]:
        """Children of the worker that are not trial leftovers (RQ's scheduler process)."""
        proc = getattr(getattr(self, "scheduler", None), "_process", None)
        pid = getattr(proc, "pid", None)
        return (pid,) if isinstance(pid, int) else ()

    def _stop_horse(self) -> None:
        horse = self._horse
        if horse is None:
            return
        with contextlib.suppress(OSError):
            horse.send({"exit": True})
        horse.close()  # EOF: the horse exits after its current trial, if any
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                pid, _ = os.waitpid(horse.pid, os.WNOHANG)
                if pid == 0:
                    time.sleep(0.01)
                    continue
            break
        else:
            self.kill_horse()
            with contextlib.suppress(ChildProcessError):
                os.waitpid(horse.pid, 0)
        self._forget_horse()

    def _forget_horse(self) -> None:
        if self._horse is not None:
            self._horse.close()
            self._horse = None
        self._horse_pid = 0


def _plain(job: Job, default_result_ttl: int) -> bool:
    """A trial job as sweepq enqueues it: no result kept (`result_ttl=0`), no repeat, group or
    rate limit (dependencies and callbacks are refused before it runs)."""
    return (
        job.get_result_ttl(default_result_ttl) == 0
        and not job.repeats_left
        and not getattr(job, "group_id", None)
        and not getattr(job, "has_rate_limit", False)
    )


def _executions_key(job_id: str) -> str:
    from rq.executions import ExecutionRegistry

    return str(ExecutionRegistry(job_id=job_id, connection=None).key)  # type: ignore[arg-type]


def _horse_main(sock: socket.socket, url: str, worker: str) -> int:
    """The horse's loop: one Redis connection and one process for every trial it runs."""
    os.setpgrp()
    random.seed()
    from sweepq import runner

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker handles Ctrl+C (a warm shutdown)
    signal.signal(signal.SIGTERM, runner.shield)  # a group kill of a program must not end us
    for sig in (signal.SIGUSR1, signal.SIGALRM):
        signal.signal(sig, signal.SIG_DFL)
    from sweepq.server import connect
    from sweepq.store import Store

    runner._arm_parent_death()
    reaper.become_subreaper()
    store = Store(connect(url, long_running=True))
    reader = sock.makefile("rb")
    while True:
        line = reader.readline(_MAX_LINE)
        if not line:
            return 0
        message = json.loads(line)
        if message.get("exit"):
            return 0
        os.environ["RQ_JOB_ID"] = str(message["job"])
        leave = False
        try:
            state = runner.execute(
                store,
                str(message["sweep"]),
                int(message["number"]),
                attempt=int(message["attempt"]),
                url=url,
                worker=worker,
            )
            reply: dict[str, Any] = {"ok": state}
        except Exception:  # noqa: BLE001 - reported to the worker, which fails the RQ job
            reply = {"error": traceback.format_exc()}
        except BaseException:  # noqa: BLE001 - sys.exit() in a trial: this horse is not reused
            reply, leave = {"error": traceback.format_exc()}, True
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        try:
            sock.sendall(json.dumps(reply).encode() + b"\n")
        except OSError:
            return 1
        if leave:
            return 1
