"""The RQ job that runs one trial attempt: claim, spawn, watch, tee, stop, record.

Inside `rq worker` the job runs in RQ's work horse, which leads its own process group. The
program is started in that group, so RQ's stop-job and our group kill reach the program and every
child it forks. The horse asks the kernel for a signal when its worker dies (parent-death
signal) and then kills the whole group, so a `kill -9` of the worker never leaves a ghost holding
a GPU. Outside a horse (the notebook agent, a SimpleWorker) the program gets a group of its own,
so a stop never reaches the caller's group.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import redis

from sweepq.store import Keys, Store, Sweep, Trial

__all__ = ["Outcome", "execute", "run_trial"]

_FUNCTION_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_METRIC_RE = re.compile(
    r"(?:^|[\s,;])([A-Za-z_][\w./-]*)\s*[=:]\s*"
    r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?inf|nan)(?=$|[\s,;])",
    re.IGNORECASE,
)
_PR_SET_PDEATHSIG = 1
_DEATH_SIGNAL = signal.SIGRTMIN + 2


@dataclass
class Outcome:
    """How an attempt ended, before the finish script applies any pending stop request."""

    outcome: str = "finished"
    exit_code: int | None = None
    reason: str = ""


def run_trial(sweep_id: str, number: int, attempt: int) -> str:
    """RQ entry point: the job's arguments are plain values so any worker can load them."""
    from rq import get_current_job

    from sweepq.server import connect, url_of

    job = get_current_job()
    url = url_of(job.connection) if job is not None else os.environ["SWEEPQ_REDIS_URL"]
    r = connect(url, long_running=True)
    worker = os.environ.get("RQ_WORKER_ID") or f"{socket.gethostname()}:{os.getpid()}"
    return execute(Store(r), sweep_id, number, attempt=attempt, url=url, worker=worker)


def execute(
    store: Store,
    sweep_id: str,
    number: int,
    *,
    attempt: int,
    url: str,
    worker: str,
    function: Callable[[], Any] | None = None,
) -> str:
    """Claim and run one attempt; returns the state it ended in (or why it did not run)."""
    claim = store.claim(sweep_id, number, attempt=attempt, worker=worker, host=socket.gethostname())
    if claim != "ok":
        return claim
    sweep = store.sweep(sweep_id)
    trial = store.trial(sweep_id, number)
    watch = _Watch(store, sweep, trial)
    try:
        from sweepq.config import SweepConfig

        cfg = SweepConfig.from_dict(sweep.config)
        program = cfg.program or ""
        env = _trial_env(url, trial)
        if function is not None or _FUNCTION_RE.match(program):
            result = _run_function(function or _import(program, sweep), env, watch)
        else:
            result = _run_program(cfg, sweep, trial, env, watch)
    except Exception as err:  # noqa: BLE001 - any failure of ours is recorded, never lost
        result = Outcome("failed", None, f"runner error: {type(err).__name__}: {err}")
        traceback.print_exc()
    finally:
        try:
            watch.close()
        except Exception:  # noqa: BLE001 - the outcome must still be recorded below
            traceback.print_exc()
    try:
        result = _settle(store, sweep, trial, watch, result)
    except Exception:  # noqa: BLE001 - record what the program did, whatever failed here
        traceback.print_exc()
    final = store.finish(
        sweep_id, number, attempt=attempt, outcome=result.outcome, exit_code=result.exit_code, reason=result.reason
    )
    if final == "queued":
        from sweepq.jobs import enqueue_trial

        enqueue_trial(
            store.r,
            queue=sweep.queue,
            trial=store.trial(sweep_id, number),
            time_limit=float(sweep.settings["time_limit"]),
            grace=float(sweep.settings["grace"]),
        )
    return final


def _settle(store: Store, sweep: Sweep, trial: Trial, watch: _Watch, result: Outcome) -> Outcome:
    """The final outcome: time limit, a metric never logged, preemption or warm shutdown."""
    sweep_id, number = trial.sweep_id, trial.number
    if watch.timed_out and result.outcome != "requeue":
        result = Outcome("failed", result.exit_code, f"time limit of {sweep.settings['time_limit']:g}s exceeded")
    elif result.outcome == "finished" and sweep.config.get("metric"):
        fresh = store.trial(sweep_id, number)
        if fresh.history_len == 0 and not fresh.stop:
            name = sweep.config["metric"]["name"]
            result = Outcome("failed", result.exit_code, f"metric {name!r} was never logged")
    if watch.requeue_reason and result.outcome != "finished":
        result = Outcome("requeue", result.exit_code, watch.requeue_reason)
    elif _preempting(store, trial):
        result = Outcome("requeue", result.exit_code, "preempted")
    return result


def _preempting(store: Store, trial: Trial) -> bool:
    return bool(store.trial_fields(trial.sweep_id, trial.number, "preempting")[0])


def _trial_env(url: str, trial: Trial) -> dict[str, str]:
    return {
        "SWEEPQ_REDIS_URL": url,
        "SWEEPQ_SWEEP_ID": trial.sweep_id,
        "SWEEPQ_TRIAL": str(trial.number),
        "SWEEPQ_ATTEMPT": str(trial.attempt),
    }


def _import(program: str, sweep: Sweep) -> Callable[[], Any]:
    module_name, func_name = program.split(":")
    for path in (os.getcwd(), sweep.settings.get("workdir") or ""):
        if path and path not in sys.path:
            sys.path.insert(0, path)
    fn: Callable[[], Any] = getattr(importlib.import_module(module_name), func_name)
    return fn


# --- function mode ------------------------------------------------------------------------------


def _run_function(fn: Callable[[], Any], env: dict[str, str], watch: _Watch) -> Outcome:
    """Run `fn` here, with the trial's environment so `sweepq.init()` inside finds its trial."""
    from sweepq import sdk, wandb_bridge

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    watch.start(on_stop=None)
    try:
        wandb_bridge.activate_in_process()
        fn()
        return Outcome("finished", 0)
    except sdk.Stopped:
        return Outcome("failed", None, "stopped")
    except Exception as err:  # noqa: BLE001 - the user's function failed: record why
        traceback.print_exc()
        return Outcome("failed", None, f"{type(err).__name__}: {err}")
    finally:
        wandb_bridge.finish_in_process()
        sdk.finish_current()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --- subprocess mode ----------------------------------------------------------------------------


def _run_program(cfg: Any, sweep: Sweep, trial: Trial, env: dict[str, str], watch: _Watch) -> Outcome:
    from sweepq import command, wandb_bridge

    tmp = Path(tempfile.mkdtemp(prefix=f"sweepq-{trial.sweep_id}-{trial.number}-"))
    try:
        params_file = tmp / "params.json"
        params_file.write_text(json.dumps(trial.params))
        # `${interpreter}` is "python", as in W&B: it must be the worker's own Python, where
        # sweepq is installed, even when the worker was started without activating its venv.
        path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
        full_env = {**os.environ, **env, "SWEEPQ_CONFIG_FILE": str(params_file), "PYTHONUNBUFFERED": "1", "PATH": path}
        full_env.update(wandb_bridge.program_env(tmp, sweep, trial, full_env))  # W&B's agent env + hook
        argv = command.render(cfg, trial.params, args_json_file=str(params_file), environ=full_env)
        cwd = _workdir(cfg.program, sweep)
        own_group = os.getpgrp() == os.getpid()
        if own_group:
            _arm_parent_death()
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=cwd,
                close_fds=True,
                preexec_fn=_child_setup,
                process_group=None if own_group else 0,
            )
        except OSError as err:
            return Outcome("failed", None, f"cannot start {argv[0]!r}: {err.strerror or err}")
        pgid = os.getpgrp() if own_group else proc.pid
        shielded = not own_group
        if own_group and threading.current_thread() is threading.main_thread():
            # Shield the runner from its own group kill; the program keeps the default
            # disposition it started with.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            shielded = True
        killer = _GroupKiller(pgid, exclude=os.getpid(), grace=float(sweep.settings["grace"]), shielded=shielded)
        watch.start(on_stop=killer.kill)
        tail = _tee(proc.stdout, watch)  # returns at EOF: every writer of the pipe is gone
        rc = proc.wait()
        killer.sweep_leftovers()
        return _outcome_of(rc, tail)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _workdir(program: str | None, sweep: Sweep) -> str:
    """The worker's directory, unless only the planner's directory holds the program
    (the local case, where the planner started the workers)."""
    here = os.getcwd()
    workdir = str(sweep.settings.get("workdir") or "")
    if program and not Path(here, program).exists() and workdir and Path(workdir, program).exists():
        return workdir
    return here


def _child_setup() -> None:
    """In the program, before exec: die with the runner (a parent-death signal)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def _arm_parent_death() -> None:
    """When the worker dies (kill -9, OOM), kill this horse's whole process group."""
    if threading.current_thread() is not threading.main_thread():
        return
    parent = os.getppid()

    def _die(_signum: int, _frame: Any) -> None:
        os.killpg(os.getpgrp(), signal.SIGKILL)

    signal.signal(_DEATH_SIGNAL, _die)
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(_DEATH_SIGNAL), 0, 0, 0)
    if os.getppid() != parent:  # the worker died before the signal was armed
        _die(0, None)


def _outcome_of(rc: int, tail: list[str]) -> Outcome:
    if rc == 0:
        return Outcome("finished", 0)
    if rc < 0:
        with contextlib.suppress(ValueError):
            return Outcome("failed", rc, f"killed by {signal.Signals(-rc).name}")
        return Outcome("failed", rc, f"killed by signal {-rc}")
    last = next((line for line in reversed(tail) if line.strip()), "")
    return Outcome("failed", rc, f"exit code {rc}" + (f": {last.strip()[:300]}" if last else ""))


def _tee(stream: IO[bytes] | None, watch: _Watch) -> list[str]:
    """Copy the program's output to the worker's stdout and to Redis; parse `name=value`."""
    assert stream is not None
    tail: list[str] = []
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace").rstrip("\n")
        sys.stdout.write(line + "\n")
        tail.append(line)
        if len(tail) > 20:
            del tail[0]
        watch.output(line)
    sys.stdout.flush()
    watch.flush()
    return tail


def parse_metrics(line: str) -> dict[str, float]:
    """`val_loss=0.31 epoch=3` -> {'val_loss': 0.31, 'epoch': 3.0}: the stdout protocol."""
    return {m.group(1): float(m.group(2)) for m in _METRIC_RE.finditer(line)}


class _GroupKiller:
    """SIGTERM to the program's group, a grace period, then SIGKILL to whatever is left."""

    def __init__(self, pgid: int, *, exclude: int, grace: float, shielded: bool) -> None:
        self.pgid, self.exclude, self.grace = pgid, exclude, grace
        self.shielded = shielded  # SIGTERM to the whole group cannot hurt the runner
        self.signalled_at: float | None = None

    def members(self) -> list[int]:
        return _group_members(self.pgid, exclude=self.exclude)

    def kill(self) -> None:
        self.signalled_at = time.monotonic()
        if self.shielded:  # one syscall, no /proc scan: the stop reaches the program at once
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, signal.SIGTERM)
        else:
            self._signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while time.monotonic() < deadline and self.members():
            time.sleep(0.05)
        self._signal(signal.SIGKILL)

    def sweep_leftovers(self) -> None:
        """Children the program left behind would hold the GPU: they go too."""
        if self.members():
            self.kill()

    def _signal(self, sig: signal.Signals) -> None:
        for pid in self.members():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)


def _group_members(pgid: int, *, exclude: int) -> list[int]:
    """Live (non-zombie) processes of a process group, read from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == exclude:
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            out.append(int(entry))
    return out


@dataclass
class _Watch:
    """The attempt's companion thread: heartbeat, stop requests, time limit, output to Redis."""

    store: Store
    sweep: Sweep
    trial: Trial
    timed_out: bool = False
    requeue_reason: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _on_stop: Callable[[], None] | None = None
    _lines: list[str] = field(default_factory=list)
    _metrics: list[dict[str, float]] = field(default_factory=list)
    _last_flush: float = 0.0
    _step: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, *, on_stop: Callable[[], None] | None) -> None:
        self._on_stop = on_stop
        self._thread = threading.Thread(target=self._loop, name="sweepq-watch", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self.flush()
        if self._thread is not None:
            with contextlib.suppress(redis.RedisError):
                self.store.wake(self.trial.sweep_id, self.trial.number, "done")
            self._thread.join(timeout=5)
            with contextlib.suppress(redis.RedisError):
                self.store.clear_wake(self.trial.sweep_id, self.trial.number)

    def output(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)
            found = parse_metrics(line)
            if found:
                self._metrics.append(found)
        if len(self._lines) >= 200 or time.monotonic() - self._last_flush > 0.2 or found:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
            metrics, self._metrics = self._metrics, []
        self._last_flush = time.monotonic()
        s, t = self.store, self.trial
        try:
            s.append_output(t.sweep_id, t.number, lines, cap=int(self.sweep.settings["log_cap"]))
            if metrics and not s.r.hget(Keys(t.sweep_id).trial(t.number), "sdk"):
                self._log_metrics(metrics)
        except redis.RedisError as err:
            print(f"sweepq: could not store output: {err}", file=sys.stderr)

    def _log_metrics(self, metrics: list[dict[str, float]]) -> None:
        metric = self.sweep.config.get("metric") or {}
        for record in metrics:
            self._step += 1
            self.store.log(
                self.trial.sweep_id,
                self.trial.number,
                attempt=self.trial.attempt,
                step=int(record.get("step", self._step)),
                record=record,
                value=record.get(metric.get("name", "")),
                goal=metric.get("goal", "minimize"),
                metric_cap=int(self.sweep.settings["metric_cap"]),
                stream_cap=int(self.sweep.settings["stream_cap"]),
            )

    def _loop(self) -> None:
        s, t = self.store, self.trial
        interval = min(2.0, max(0.2, float(self.sweep.settings["heartbeat_timeout"]) / 4))
        limit = float(self.sweep.settings["time_limit"])
        started = time.monotonic()
        key = Keys(t.sweep_id).stop(t.number)
        while not self._stop.is_set():
            try:
                wait = interval
                if limit:
                    wait = min(wait, max(0.05, limit - (time.monotonic() - started)))
                woke = s.r.blpop([key], timeout=wait)
                if self._stop.is_set():
                    return
                state, stop = s.heartbeat(t.sweep_id, t.number, attempt=t.attempt)
            except redis.RedisError:
                time.sleep(min(interval, 1.0))  # Redis restarting: the client retries
                continue
            if woke is not None and woke[1] == b"done":
                return
            reason = ""
            if stop or state != "running":
                reason = "stop"  # pruned, killed, or this attempt was superseded
            elif limit and time.monotonic() - started > limit:
                self.timed_out, reason = True, "time limit"
            elif _worker_shutting_down(s.r):
                self.requeue_reason, reason = "worker shut down", "requeue"
            if reason:
                if self._on_stop is not None:
                    self._on_stop()
                else:
                    self._stop_function()
                return

    def _stop_function(self) -> None:
        """Function mode: the next log() raises Stopped; past the grace, the horse exits."""
        deadline = time.monotonic() + float(self.sweep.settings["grace"])
        while time.monotonic() < deadline:
            if self._stop.wait(0.1):
                return
        if os.getpgrp() == os.getpid() and os.environ.get("RQ_JOB_ID"):
            t = self.trial
            self.store.finish(
                t.sweep_id, t.number, attempt=t.attempt, outcome="failed", reason="did not stop within the grace period"
            )
            os._exit(1)


def _worker_shutting_down(r: redis.Redis) -> bool:
    """A warm shutdown of our rq worker (SIGTERM) requeues the running trial."""
    name = os.environ.get("RQ_WORKER_ID")
    if not name:
        return False
    return bool(r.hget(f"rq:worker:{name}", "shutdown_requested_date"))
