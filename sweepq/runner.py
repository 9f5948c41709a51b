"""The RQ job that runs one trial attempt: claim, spawn, watch, tee, stop, record.

The attempt's companions are split by concern: `Heartbeat` (a thread: beats, waits on the
attempt's wake list, decides when to stop: a stop request, the time limit, a warm shutdown),
`OutputSink` (the program's lines and `name=value` metrics, batched into one round trip) and a
stopper (`_GroupKiller` for a program; for a function, `Stopped` raised on the main thread).

Inside `rq worker` the job runs in RQ's work horse, which leads its own process group. The
program is started in that group, so RQ's stop-job and our group kill reach the program and every
child it forks. The horse asks the kernel for a signal when its worker dies (parent-death
signal) and then kills the whole group, so a `kill -9` of the worker never leaves a ghost holding
a GPU. Outside a horse (the notebook agent, a SimpleWorker) the program gets a group of its own,
so a stop never reaches the caller's group.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import importlib
import json
import os
import re
import secrets
import selectors
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
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import redis

from sweepq import jobs
from sweepq import reaper as _reaper
from sweepq.channel import ChannelServer, DirectLink, TrialLink
from sweepq.model import StopKind, Sweep, Trial, TrialState
from sweepq.store import LogRecord, Store, Transition

__all__ = ["Outcome", "execute", "run_trial"]

_FUNCTION_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
# Possessive quantifiers (`*+`, `++`) keep matching linear: with plain `\d+\.?\d*` a long run
# of digits not followed by a separator backtracks quadratically (20k digits took 13 s). Only
# inf/nan ignore case: IGNORECASE on the name would let [A-Za-z] match the Kelvin sign.
_METRIC_RE = re.compile(
    r"(?:^|[\s,;])([A-Za-z_][\w./-]*+)\s*+[=:]\s*+"
    r"([-+]?+(?:[0-9]++(?:\.[0-9]*+)?+|\.[0-9]++)(?:[eE][-+]?+[0-9]++)?+|[-+]?+(?i:inf)|(?i:nan))(?=$|[\s,;])"
)
_PR_SET_PDEATHSIG = 1
_DEATH_SIGNAL = signal.SIGRTMIN + 2


@dataclass
class Outcome:
    """How an attempt ended, before the finish script applies any pending stop request."""

    outcome: str = "finished"
    exit_code: int | None = None
    reason: str = ""
    summary: str = ""  # the run summary the program sent last (JSON text), written by the finish


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
    token = secrets.token_hex(8)
    claim = store.claim_to_run(
        sweep_id, number, attempt=attempt, worker=worker, host=socket.gethostname(), token=token, settle=CLAIM_SETTLE
    )
    if claim.status != "ok" or claim.trial is None or claim.sweep is None:
        return claim.status
    _durable(store)  # the claim is on disk (and on the replicas) before the program starts
    trial, sweep, server_id = claim.trial, claim.sweep, claim.server_id
    from sweepq.trust import refusal

    why = refusal(sweep, trial, in_process=function is not None)  # the records used below: no TOCTOU
    if why is not None:
        print(f"sweepq: refused trial {trial.id}: {why}", file=sys.stderr)
        return store.finish(sweep_id, number, attempt=attempt, outcome="failed", reason=f"refused: {why}").status
    sink = OutputSink(store, sweep, trial)
    beat = Heartbeat(store, sweep, trial, token=token, server_id=server_id)
    try:
        program = sweep.config.program or ""
        env = _trial_env(url, trial)
        if function is not None or _FUNCTION_RE.match(program):
            link = DirectLink(store, sweep.id, trial.number, trial.attempt, sweep=sweep, params=trial.params)
            result = _run_function(function or _import(program, sweep), env, beat, link)
        else:
            result = _run_program(store, sweep, trial, env, beat, sink)
    except Exception as err:  # noqa: BLE001 - any failure of ours is recorded, never lost
        result = Outcome("failed", None, f"runner error: {type(err).__name__}: {err}")
        traceback.print_exc()
    finally:
        try:
            beat.close()
            sink.flush()
        except Exception:  # noqa: BLE001 - the outcome must still be recorded below
            traceback.print_exc()
    summary = result.summary
    result, checks = _settle(sweep, beat, result)

    def finish(result: Outcome, checks: str) -> Transition:
        return store.finish(
            sweep_id,
            number,
            attempt=attempt,
            outcome=result.outcome,
            exit_code=result.exit_code,
            reason=result.reason,
            token=token,
            checks=checks,
            summary=summary,
        )

    final = finish(result, checks)
    if final.status == "unlogged":
        final = finish(_unlogged(store, beat, result), "preempt")
    _durable(store)  # the outcome is on disk before RQ hears that the job is done
    if final.status == "queued" and final.trial is not None:
        from sweepq.jobs import enqueue_trial

        enqueue_trial(store.r, sweep, final.trial)
    return final.status


# Seconds that claims wait after the server changed identity (restart, failover), so runners
# whose claims it lost re-assert them first (a heartbeat interval, at most 2 s, plus reconnecting).
CLAIM_SETTLE = 8.0


def _durable(store: Store) -> None:
    """Wait until this client's writes are fsynced and replicated where the server can say so
    (see `Store.sync`); a failure here changes nothing that the fences do not already cover."""
    with contextlib.suppress(redis.RedisError):
        store.sync()


def _settle(sweep: Sweep, beat: Heartbeat, result: Outcome) -> tuple[Outcome, str]:
    """The outcome as the runner sees it (time limit, preemption, warm shutdown), and the checks
    the finish script is to make of the record: preemption, and a metric never logged."""
    if beat.reason is StopReason.TIME_LIMIT and result.outcome != "requeue":
        return Outcome("failed", result.exit_code, f"time limit of {sweep.settings.time_limit:g}s exceeded"), ""
    if beat.reason is StopReason.SHUTDOWN and result.outcome != "finished":
        return Outcome("requeue", result.exit_code, "worker shut down"), ""
    if beat.reason is StopReason.LOST and result.outcome != "finished":
        # Not the program's fault; if the planner already queued the next attempt, the finish
        # script answers 'stale' and this changes nothing.
        return Outcome("requeue", result.exit_code, f"stopped: no heartbeat reached Redis for {beat.lost_after:g}s"), ""
    return result, "metric" if result.outcome == "finished" and sweep.metric else "preempt"


def _unlogged(store: Store, beat: Heartbeat, result: Outcome) -> Outcome:
    """The program finished without logging the sweep's metric (finish.lua's 'unlogged')."""
    with contextlib.suppress(redis.RedisError):
        if beat.server_id and store.server_id() != beat.server_id:
            # The server restarted or failed over during the attempt: its last writes, maybe
            # every logged value, are gone. Run it again rather than blame the program.
            return Outcome("requeue", result.exit_code, "Redis lost the attempt's metrics (server restarted)")
    name = beat.sweep.metric.name if beat.sweep.metric else ""
    return Outcome("failed", result.exit_code, f"metric {name!r} was never logged")


def _trial_env(url: str, trial: Trial) -> dict[str, str]:
    return {
        "SWEEPQ_REDIS_URL": url,
        "SWEEPQ_SWEEP_ID": trial.sweep_id,
        "SWEEPQ_TRIAL": str(trial.number),
        "SWEEPQ_ATTEMPT": str(trial.attempt),
    }


def _import(program: str, sweep: Sweep) -> Callable[[], Any]:
    module_name, func_name = program.split(":")
    for path in (os.getcwd(), sweep.settings.workdir):
        if path and path not in sys.path:
            sys.path.insert(0, path)
    fn: Callable[[], Any] = getattr(importlib.import_module(module_name), func_name)
    return fn


# --- function mode ------------------------------------------------------------------------------


def _run_function(fn: Callable[..., Any], env: dict[str, str], beat: Heartbeat, link: TrialLink) -> Outcome:
    """Run `fn` here, with the trial's environment so `sweepq.init()` inside finds its trial.

    A stop reaches the function on the runner's main path: `Stopped` is raised in the main
    thread (through a signal the heartbeat thread sends to this process), so a function that
    never calls log() is stopped too. If it does not return within the grace period, the work
    horse exits (RQ then starts a fresh one)."""
    from sweepq import channel, sdk, wandb_bridge

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    channel.set_in_process(link)
    reaping = _in_horse() and _reaper.become_subreaper()
    restore = _raise_stopped_on(_STOP_SIGNAL)
    beat.start(on_stop=_FunctionStopper(beat).stop)
    try:
        wandb_bridge.activate_in_process()
        if _takes_config(fn):
            fn(sdk.init().config)
        else:
            fn()
        return Outcome("finished", 0)
    except sdk.Stopped:
        return Outcome("failed", None, "stopped")
    except Exception as err:  # noqa: BLE001 - the user's function failed: record why
        traceback.print_exc()
        return Outcome("failed", None, f"{type(err).__name__}: {err}")
    finally:
        beat.close()
        restore()
        wandb_bridge.finish_in_process()
        sdk.finish_current()
        channel.set_in_process(None)
        if reaping:
            # In a work horse: processes the function started (data loaders, servers, daemons)
            # end with its trial, so a reused horse starts the next one clean.
            _reaper.end_children(beat.sweep.settings.grace)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_STOP_SIGNAL = signal.SIGUSR2


def _in_horse() -> bool:
    """In a work horse (RQ's, or the warm worker's): it leads its own process group."""
    return os.getpgrp() == os.getpid() and bool(os.environ.get("RQ_JOB_ID"))


def _takes_config(fn: Callable[..., Any]) -> bool:
    """`def train(config)`: the W&B-style entry point gets the trial's config as its argument
    (`def main()` reads it from `sweepq.init().config`)."""
    import inspect

    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in params if p.kind in positional and p.default is inspect.Parameter.empty]
    return len(required) == 1


def _raise_stopped_on(signum: int) -> Callable[[], None]:
    """Make `signum` raise `sdk.Stopped` in the main thread; returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    from sweepq import sdk

    def _raise(_signum: int, _frame: Any) -> None:
        raise sdk.Stopped("the sweep stopped this trial")

    previous = signal.signal(signum, _raise)

    def _restore() -> None:
        signal.signal(signum, previous)

    return _restore


class _FunctionStopper:
    def __init__(self, beat: Heartbeat) -> None:
        self.beat = beat

    def stop(self) -> None:
        """On the heartbeat thread: interrupt the main thread, then give it the grace period."""
        in_horse = _in_horse()
        if threading.main_thread().is_alive() and in_horse:
            os.kill(os.getpid(), _STOP_SIGNAL)
        if not self.beat.closed.wait(self.beat.sweep.settings.grace) and in_horse:
            t = self.beat.trial
            self.beat.store.finish(
                t.sweep_id, t.number, attempt=t.attempt, outcome="failed", reason="did not stop within the grace period"
            )
            os._exit(1)


# --- subprocess mode ----------------------------------------------------------------------------


def _run_program(
    store: Store, sweep: Sweep, trial: Trial, env: dict[str, str], beat: Heartbeat, sink: OutputSink
) -> Outcome:
    from sweepq import channel, command, wandb_bridge

    cfg = sweep.config
    tmp = Path(tempfile.mkdtemp(prefix=f"sweepq-{trial.sweep_id}-{trial.number}-", dir=_attempt_root()))
    try:
        params_file = tmp / "params.json"
        params_file.write_text(json.dumps(trial.params))
        # `${interpreter}` is "python", as in W&B: it must be the worker's own Python, where
        # sweepq is installed, even when the worker was started without activating its venv.
        path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
        # The program reaches its trial through the runner's channel, never Redis itself: it gets
        # no Redis credential, and can touch no other trial or attempt.
        full_env = {k: v for k, v in {**os.environ, **env}.items() if k != "SWEEPQ_REDIS_URL"}
        full_env.update({"SWEEPQ_CONFIG_FILE": str(params_file), "PYTHONUNBUFFERED": "1", "PATH": path})
        full_env[channel.ENV] = str(tmp / "channel.sock")
        full_env.update(wandb_bridge.program_env(tmp, sweep, trial, full_env))  # W&B's agent env + hook
        argv = command.render(cfg, trial.params, args_json_file=str(params_file), environ=full_env)
        cwd = _workdir(cfg.program, sweep)
        server = channel.ChannelServer(store, sweep, trial, full_env[channel.ENV])
        full_env[channel.ATTACH_ENV] = str(tmp / "attach")
        server.write_attach(full_env[channel.ATTACH_ENV])
        inherited, full_env[channel.FD_ENV] = server.offer()
        own_group = os.getpgrp() == os.getpid()
        if own_group:  # in a work horse
            _arm_parent_death()
        reaping = own_group and _reaper.become_subreaper()  # before the program can leave the group
        try:
            proc = _start(argv, env=full_env, cwd=cwd, own_group=own_group, pass_fds=(inherited,))
        except OSError as err:
            server.close()
            return Outcome("failed", None, f"cannot start {argv[0]!r}: {err.strerror or err}")
        finally:
            server.handed_over()
        pgid = os.getpgrp() if own_group else proc.pid
        shielded = not own_group
        if own_group and threading.current_thread() is threading.main_thread():
            # Shield the runner from its own group kill: a handler that does nothing, not
            # SIG_IGN, because an exec resets handled signals to their default (the next
            # program starts killable) but keeps ignored ones ignored.
            signal.signal(signal.SIGTERM, shield)
            shielded = True
        killer = _GroupKiller(pgid, program=proc.pid, grace=sweep.settings.grace, shielded=shielded, reaper=reaping)
        beat.start(on_stop=killer.kill)
        try:
            rc, tail = _pump(proc, server, sink, killer)
        finally:
            server.close()
        outcome = _outcome_of(rc, tail)
        outcome.summary = server.summary
        return outcome
    finally:
        _remove_dir(tmp)


def _pump(
    proc: subprocess.Popen[bytes], server: ChannelServer, sink: OutputSink, killer: _GroupKiller
) -> tuple[int, list[str]]:
    """Until the program has exited and its output ended: copy its output (`OutputSink`), answer
    its channel requests and notice its exit, all from this one thread (a tee thread, an accept
    thread and a handler thread per trial cost ~1.5 ms and their hand-offs). Its exit is a pidfd where
    Linux has them, else a pipe a waiter thread writes to. What the program left running (a
    daemon holding the output pipe, too) ends with it; then the output is read to its end."""
    assert proc.stdout is not None
    out = proc.stdout.fileno()
    exited_fd, cleanup = _exit_notice(proc)
    rc: int | None = None
    pending, tail = b"", list[str]()
    deadline = None
    with selectors.DefaultSelector() as sel:
        sel.register(out, selectors.EVENT_READ, "out")
        sel.register(exited_fd, selectors.EVENT_READ, "exit")
        server.watch(sel)
        try:
            while rc is None or out in sel.get_map():
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                events = sel.select(timeout)
                if not events and deadline is not None:
                    break  # EOF never came: a writer of the pipe outlived the sweep of leftovers
                for key, _ in events:
                    if server.owns(key):
                        server.on_ready(sel, key)
                        sink.sdk = server.connected
                    elif key.data == "exit":
                        sel.unregister(exited_fd)
                        rc = proc.wait()
                        killer.sweep_leftovers()
                        deadline = time.monotonic() + 10.0
                    else:
                        chunk = os.read(out, 65536)
                        if not chunk:
                            sel.unregister(out)
                            continue
                        *lines, pending = (pending + chunk).split(b"\n")
                        for raw in lines:
                            _tee_line(raw, tail, sink)
                        sink.settle()  # the lines that came together go in one round trip
        finally:
            cleanup()
    if pending:
        _tee_line(pending, tail, sink)
    sys.stdout.flush()
    sink.flush()
    if rc is None:
        rc = proc.wait()
        killer.sweep_leftovers()
    return rc, tail


def _exit_notice(proc: subprocess.Popen[bytes]) -> tuple[int, Callable[[], None]]:
    """A descriptor that becomes readable when the program exits, and how to close it."""
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        r, w = os.pipe()

        def wait() -> None:
            proc.wait()
            os.write(w, b"x")

        threading.Thread(target=wait, name="sweepq-exit", daemon=True).start()

        def close_pipe() -> None:
            os.close(r)
            os.close(w)

        return r, close_pipe
    return fd, lambda: os.close(fd)


def _tee_line(raw: bytes, tail: list[str], sink: OutputSink) -> None:
    line = raw.decode("utf-8", errors="replace")
    sys.stdout.write(line + "\n")
    tail.append(line)
    if len(tail) > 20:
        del tail[0]
    sink.add(line)


def _remove_dir(path: Path) -> None:
    """The attempt's directory, which normally holds three plain files: unlinked directly
    (shutil.rmtree's safe walk costs ~0.6 ms a trial); anything else, rmtree."""
    try:
        for name in os.listdir(path):
            os.unlink(os.path.join(path, name))
        os.rmdir(path)
    except OSError:
        shutil.rmtree(path, ignore_errors=True)


def _workdir(program: str | None, sweep: Sweep) -> str:
    """The worker's directory, unless only the planner's directory holds the program
    (the local case, where the planner started the workers)."""
    here = os.getcwd()
    workdir = sweep.settings.workdir
    if program and not Path(here, program).exists() and workdir and Path(workdir, program).exists():
        return workdir
    return here


def shield(_signum: int, _frame: Any) -> None:
    """SIGTERM's handler in a work horse: the group kill of a program must not end the horse."""


def _start(
    argv: list[str], *, env: dict[str, str], cwd: str, own_group: bool, pass_fds: tuple[int, ...] = ()
) -> subprocess.Popen[bytes]:
    """Start the program with a parent-death signal (it dies with its runner even when worker
    and horse are killed together). Through util-linux's `setpriv --pdeathsig` where there is
    one: then Popen can vfork, and a trial's start costs ~2 ms less than with a `preexec_fn`,
    which forces a full fork of the horse and runs Python in the child."""
    argv = _past_env(argv, env)
    setpriv = _setpriv()
    args: list[str] = argv
    preexec: Callable[[], None] | None = _child_setup
    if setpriv is not None and signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:
        # What Popen would have said about the program itself, rather than setpriv's exit 127.
        program = argv[0] if os.sep in argv[0] else shutil.which(argv[0], path=env.get("PATH"))
        where = "" if program is None else os.path.join(cwd, program)
        if program is None or not os.path.isfile(where):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), argv[0])
        if not os.access(where, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), argv[0])
        args, preexec = [setpriv, "--pdeathsig", "KILL", "--", program, *argv[1:]], None
    return subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=cwd,
        close_fds=True,
        pass_fds=pass_fds,
        preexec_fn=preexec,
        process_group=None if own_group else 0,
    )


def _past_env(argv: list[str], env: dict[str, str]) -> list[str]:
    """W&B's default command starts with `${env}` (`/usr/bin/env python ...`): what env would
    exec is looked up here, in the program's PATH as env would, which saves an exec (~1 ms a
    trial). Anything else env might do (options, NAME=value, a command not found) is left to env."""
    if len(argv) < 2 or argv[0] != "/usr/bin/env" or argv[1].startswith("-") or "=" in argv[1]:
        return argv
    found = shutil.which(argv[1], path=env.get("PATH", os.defpath))
    return argv if found is None else [found, *argv[2:]]


@functools.cache
def _attempt_root() -> str | None:
    """Where attempt directories go: tmpfs (`/dev/shm`) where there is one and the user set no
    TMPDIR, because on a disk file system creating and removing the directory, its two files
    and the channel's socket cost ~2 ms a trial; else the temporary directory."""
    if os.environ.get("TMPDIR"):
        return None
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


@functools.cache
def _setpriv() -> str | None:
    """util-linux's setpriv, if it is here and knows --pdeathsig (2.33 and later)."""
    path = shutil.which("setpriv")
    if path is None:
        return None
    try:
        ok = subprocess.run([path, "--pdeathsig", "KILL", "--", "true"], capture_output=True, timeout=5).returncode
    except (OSError, subprocess.SubprocessError):
        return None
    return path if ok == 0 else None


def _child_setup() -> None:
    """In the program, before exec: die with the runner (a parent-death signal), and start with
    SIGTERM's default action even when the runner ignores it (a warm horse always does)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with contextlib.suppress(Exception):
        _reaper.libc().prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def _arm_parent_death() -> None:
    """When the worker dies (kill -9, OOM), kill this horse's whole process group."""
    if threading.current_thread() is not threading.main_thread():
        return
    parent = os.getppid()

    def _die(_signum: int, _frame: Any) -> None:
        die_with_descendants()

    signal.signal(_DEATH_SIGNAL, _die)
    with contextlib.suppress(Exception):
        _reaper.libc().prctl(_PR_SET_PDEATHSIG, int(_DEATH_SIGNAL), 0, 0, 0)
    if os.getppid() != parent:  # the worker died before the signal was armed
        _die(0, None)


def die_with_descendants() -> None:
    """SIGKILL every process of this horse: its children first, round after round (a subreaper
    inherits the daemons a program left, which are out of the group), then the group, itself
    included."""
    if _reaper.is_subreaper():
        for _ in range(20):
            if not _reaper.signal_children(signal.SIGKILL):
                break
            time.sleep(0.01)
    os.killpg(os.getpgrp(), signal.SIGKILL)


def _outcome_of(rc: int, tail: list[str]) -> Outcome:
    if rc == 0:
        return Outcome("finished", 0)
    if rc < 0:
        with contextlib.suppress(ValueError):
            return Outcome("failed", rc, f"killed by {signal.Signals(-rc).name}")
        return Outcome("failed", rc, f"killed by signal {-rc}")
    last = next((line for line in reversed(tail) if line.strip()), "")
    return Outcome("failed", rc, f"exit code {rc}" + (f": {last.strip()[:300]}" if last else ""))


def parse_metrics(line: str) -> dict[str, float]:
    """`val_loss=0.31 epoch=3` -> {'val_loss': 0.31, 'epoch': 3.0}: the stdout protocol."""
    return {m.group(1): float(m.group(2)) for m in _METRIC_RE.finditer(line)}


class _GroupKiller:
    """SIGTERM to the program's group, a grace period, then SIGKILL to whatever is left.

    In a work horse (`reaper` true) the runner is a child subreaper, so whatever the program left
    behind, in its group or out of it (a `setsid` daemon), is the horse's descendant and becomes
    its child when its parent dies: "anything left?" is one `waitid`, and what is left is killed
    by pid, round after round, until the horse has no child. Outside a horse the program leads a
    group of its own, which `killpg` reaches (and probes with signal 0) without touching ours."""

    def __init__(self, pgid: int, *, program: int, grace: float, shielded: bool, reaper: bool) -> None:
        self.pgid, self.program, self.grace = pgid, program, grace
        self.shielded = shielded  # SIGTERM to the whole group cannot hurt the runner
        self.reaper = reaper
        self.signalled_at: float | None = None

    def left(self) -> bool:
        if self.reaper:
            return _reaper.has_children(keep=(self.program,))
        if self.pgid == os.getpgrp():
            return bool(_group_members(self.pgid, exclude=os.getpid()))
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def kill(self) -> None:
        self.signalled_at = time.monotonic()
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while time.monotonic() < deadline and self.left():
            time.sleep(0.02)
        deadline = time.monotonic() + 5.0
        while True:
            self._signal(signal.SIGKILL)
            if not self.left() or time.monotonic() > deadline:
                return
            time.sleep(0.01)

    def sweep_leftovers(self) -> None:
        """Children the program left behind would hold the GPU: they go too."""
        if self.left():
            self.kill()

    def _signal(self, sig: signal.Signals) -> None:
        ours = self.pgid == os.getpgrp()
        if not ours or (self.shielded and sig is signal.SIGTERM):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, sig)  # one syscall: the stop reaches the program at once
        if self.reaper:
            _reaper.signal_children(sig)
        elif ours:
            for pid in _group_members(self.pgid, exclude=os.getpid()):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)


def _group_members(pgid: int, *, exclude: int) -> list[int]:
    """Live (non-zombie) processes of a process group, read from /proc: only where the runner
    shares the program's group and could not become a subreaper (not Linux)."""
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


class OutputSink:
    """The program's output lines and `name=value` metrics, sent in batches: one pipelined
    round trip every 0.2 s or 200 lines (at once when a line holds a metric, so the pruner
    sees it within milliseconds). Lines are added as they are read and sent by `settle`, so
    what one read brought (a program printing metrics in a tight loop) costs one round trip,
    not one a line. Metrics printed by a program that uses the SDK are not sent once it has
    connected (`sdk`), and the log script ignores those that were (the SDK reports them), so
    no extra read is needed here."""

    _KEEP = 10_000  # records held back while Redis is unreachable (then the oldest go)

    def __init__(self, store: Store, sweep: Sweep, trial: Trial) -> None:
        from sweepq.server import fail_fast

        self.store, self.sweep, self.trial = store, sweep, trial
        # While the program runs, a flush must not block the tee (and so the program) through a
        # partition: it fails fast and keeps its data for the next flush. The last flush retries.
        self._fast = Store(fail_fast(store.r), now=store.now)
        self._lines: list[str] = []
        self._records: list[LogRecord] = []
        self._last_flush = 0.0
        self._retry_at = 0.0
        self._step = 0
        self._urgent = False  # a metric is waiting: `settle` sends it now
        self.sdk = False  # the program connected to its channel: it reports through the SDK

    def add(self, line: str) -> None:
        """Keep a line (and its metrics); `settle` decides when to send."""
        self._lines.append(line)
        found = None if self.sdk else parse_metrics(line)
        if found:
            self._step += 1
            name = self.sweep.metric.name if self.sweep.metric else ""
            step = int(found.get("step", self._step))
            self._records.append(LogRecord(step, found, found.get(name)))
            self._urgent = True

    def settle(self) -> None:
        """Send what was added if it holds a metric, is 200 lines or waited 0.2 s (fail-fast:
        through a partition the lines are kept for the next try, the program is not held)."""
        now = time.monotonic()
        if now >= self._retry_at and (self._urgent or len(self._lines) >= 200 or now - self._last_flush > 0.2):
            self._send(self._fast)

    def flush(self) -> None:
        self._send(self.store)

    def _send(self, store: Store) -> None:
        lines, self._lines = self._lines, []
        records, self._records = self._records, []
        self._last_flush, self._urgent = time.monotonic(), False
        if not lines and not records:
            return
        t = self.trial
        try:
            store.log(self.sweep, t.number, attempt=t.attempt, records=records, source="stdout", output=lines)
        except redis.RedisError as err:
            print(f"sweepq: could not store output (kept for the next try): {err}", file=sys.stderr)
            self._records = (records + self._records)[-self._KEEP :]
            self._lines = (lines + self._lines)[-self.sweep.settings.log_cap :]
            self._retry_at = time.monotonic() + 1.0


class _Deadlines:
    """One thread per process watches the deadlines of every live attempt (every 50 ms), apart
    from their heartbeat threads, which Redis may hold up to the socket timeout. One for the
    process, not one per attempt: a warm horse starts it once, not on every trial. A deadline
    that passes stops its attempt from a thread of its own (the stop may take the grace)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._beats: set[Heartbeat] = set()
        self._thread: threading.Thread | None = None

    def watch(self, beat: Heartbeat) -> None:
        with self._lock:
            self._beats.add(beat)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="sweepq-deadlines", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(0.05)
            now = time.monotonic()
            with self._lock:
                self._beats = {b for b in self._beats if not b.closed.is_set() and b.reason is None}
                due = [(b, why) for b in self._beats if (why := b._due(now)) is not None]
                self._beats.difference_update(b for b, _ in due)
            for beat, why in due:
                threading.Thread(target=beat._stop, args=(why,), name="sweepq-deadline-stop", daemon=True).start()

    def _after_fork(self) -> None:
        """In a forked child: no watcher thread runs there, and the lock may have been held."""
        self._lock, self._beats, self._thread = threading.Lock(), set(), None


_DEADLINES = _Deadlines()
os.register_at_fork(after_in_child=_DEADLINES._after_fork)


class StopReason(Enum):
    STOP = "stop"  # pruned, killed, cancelled, or this attempt was superseded
    TIME_LIMIT = "time limit"
    SHUTDOWN = "worker shut down"  # a warm shutdown of our rq worker: requeue the trial
    LOST = "lost Redis"  # no heartbeat for so long that the planner may start another attempt


class Heartbeat:
    """The attempt's companion thread: beats, waits on the attempt's wake list between beats
    (so a stop request arrives within milliseconds), and calls `on_stop` once when the attempt
    must end.

    It owns its deadlines whatever Redis does: its client never retries and every call answers
    or fails within `server.SOCKET_TIMEOUT`, the time limit is checked on every turn (so a
    partitioned program is still stopped by it), and when no heartbeat has reached Redis for
    `lost_after` seconds it stops the program itself: by then the planner may have taken the
    attempt for dead and queued the next one, and two attempts must not run at once."""

    def __init__(self, store: Store, sweep: Sweep, trial: Trial, *, token: str = "", server_id: str = "") -> None:
        from sweepq.server import fail_fast

        self.store = Store(fail_fast(store.r), now=store.now)
        self.sweep, self.trial = sweep, trial
        self.token, self.server_id = token, server_id  # the claim's, for fencing and loss detection
        self.reason: StopReason | None = None
        self.closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_stop: Callable[[], None] = lambda: None
        self._lock = threading.Lock()
        self._stopper: threading.Thread | None = None  # the thread running `on_stop`
        self._stopped = threading.Event()  # set when `on_stop` returned
        self._started = self._last_beat = time.monotonic()

    @property
    def lost_after(self) -> float:
        """Seconds without a heartbeat after which the program is stopped: early enough that
        it is gone (SIGTERM, grace, SIGKILL) before the planner's heartbeat timeout can expire
        the attempt, yet never sooner than two beats."""
        s = self.sweep.settings
        return max(2 * s.heartbeat_interval, s.heartbeat_timeout - s.grace - s.heartbeat_interval)

    def start(self, *, on_stop: Callable[[], None]) -> None:
        self._on_stop = on_stop
        self._started = self._last_beat = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="sweepq-heartbeat", daemon=True)
        self._thread.start()
        _DEADLINES.watch(self)

    def close(self) -> None:
        """No more stops from here on; a stop already under way is waited for (its kill may still
        be sweeping up leftovers). No round trip: the finish script wakes the heartbeat's wait
        ('done' on the attempt's wake list), and the thread, left to end on its own, can only
        beat for an attempt the scripts fence."""
        with self._lock:
            if self.closed.is_set():
                return
            self.closed.set()
            stopping = self.reason is not None
        if stopping and self._stopper is not threading.current_thread():
            self._stopped.wait(timeout=5)

    def _loop(self) -> None:
        """Beat and wait for a stop request; Redis may hang a call here for up to the socket
        timeout, which is why the deadlines are watched by `_Deadlines`, not here."""
        settings, t = self.sweep.settings, self.trial
        while not self.closed.is_set() and self.reason is None:
            try:
                woke = self.store.wait_wake(
                    t.sweep_id, t.number, attempt=t.attempt, timeout=settings.heartbeat_interval
                )
                if self.closed.is_set() or woke == "done":
                    return
                sent = time.monotonic()
                state, stop = self.store.heartbeat(
                    t.sweep_id, t.number, attempt=t.attempt, token=self.token, worker=t.worker or "", host=t.host or ""
                )
                self._last_beat = max(self._last_beat, sent)  # written no earlier than sent
            except redis.RedisError:
                # Redis restarting or unreachable: try again soon; `_Deadlines` keeps the deadlines.
                self.closed.wait(min(settings.heartbeat_interval, 1.0))
                continue
            reason = self._reason(state, stop, time.monotonic() - self._started)
            if reason is not None:
                self._stop(reason)
                return

    def _due(self, now: float) -> StopReason | None:
        """A deadline passed, whatever Redis does: the time limit, or `lost_after` without a beat."""
        limit = self.sweep.settings.time_limit
        if limit and now - self._started > limit:
            return StopReason.TIME_LIMIT
        if now - self._last_beat > self.lost_after:
            return StopReason.LOST
        return None

    def _stop(self, reason: StopReason) -> None:
        """Once per attempt, from whichever thread decides first."""
        with self._lock:
            if self.reason is not None or self.closed.is_set():
                return
            self.reason, self._stopper = reason, threading.current_thread()
        try:
            self._on_stop()
        finally:
            self._stopped.set()

    def _reason(self, state: str, stop: StopKind | None, elapsed: float) -> StopReason | None:
        if stop or state != TrialState.RUNNING:
            return StopReason.STOP
        if self.sweep.settings.time_limit and elapsed > self.sweep.settings.time_limit:
            return StopReason.TIME_LIMIT
        worker = os.environ.get("RQ_WORKER_ID")
        if worker and jobs.worker_shutting_down(self.store.r, worker):
            return StopReason.SHUTDOWN
        return None
