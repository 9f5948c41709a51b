"""What a person does to a sweep: stop, cancel, pause, resume, kill a trial, rerun trials.

Each works with or without a planner running: the state change is in Redis, queued RQ jobs are
cancelled here, and running trials are reached through their stop request.
"""

from __future__ import annotations

from collections.abc import Iterable

from sweepq import jobs
from sweepq.errors import SweepqError
from sweepq.model import StopKind, SweepState, TrialState
from sweepq.store import Store

__all__ = ["cancel", "delete", "kill_trial", "pause", "rerun", "resume", "stop"]


def stop(store: Store, sweep_id: str) -> int:
    """No new trials; queued ones are cancelled, running ones finish. Returns cancelled count."""
    _move(store, sweep_id, SweepState.STOPPED, [SweepState.RUNNING, SweepState.PAUSED], "stopped by user")
    return _cancel_queued(store, sweep_id)


def cancel(store: Store, sweep_id: str) -> tuple[int, int]:
    """Queued trials cancelled, running ones killed. Returns (cancelled, killed)."""
    _move(
        store,
        sweep_id,
        SweepState.CANCELLED,
        [SweepState.RUNNING, SweepState.PAUSED, SweepState.STOPPED],
        "cancelled by user",
    )
    cancelled = _cancel_queued(store, sweep_id)
    killed = 0
    for number in store.running_numbers(sweep_id):
        if store.request_stop(sweep_id, number, kind=StopKind.KILL, reason="sweep cancelled") == "signalled":
            killed += 1
    return cancelled, killed


def pause(store: Store, sweep_id: str) -> None:
    """No new trial starts; queued trials wait (their jobs are skipped and re-enqueued on resume)."""
    _move(store, sweep_id, SweepState.PAUSED, [SweepState.RUNNING], "paused by user")


def resume(store: Store, sweep_id: str) -> None:
    _move(store, sweep_id, SweepState.RUNNING, [SweepState.PAUSED, SweepState.STOPPED], "resumed by user", waive=True)


def kill_trial(store: Store, sweep_id: str, number: int) -> str:
    """Stop one trial: a running one ends `killed`, a queued one `cancelled`."""
    trial = store.trial(sweep_id, number)
    result = store.request_stop(sweep_id, number, kind=StopKind.KILL, reason="killed by user")
    if result == "cancelled":
        jobs.cancel_job(store.r, trial.job_id)
    return result


def rerun(store: Store, sweep_id: str, numbers: Iterable[int] = (), *, failed: bool = False) -> list[int]:
    """Run trials again with the same parameters (W&B never reruns a failed grid point)."""
    sweep = store.sweep(sweep_id)
    chosen = set(numbers)
    if failed:
        failed_states = (TrialState.FAILED, TrialState.CRASHED, TrialState.KILLED)
        chosen |= {t.number for t in store.trials(sweep_id) if t.state in failed_states}
    if not chosen:
        raise SweepqError("nothing to rerun: name trials or pass --failed")
    if sweep.state.closed:
        store.set_sweep_state(
            sweep_id,
            SweepState.RUNNING,
            allowed=[sweep.state],
            reason="resumed: rerun",
            waive_failures=True,
            by_user=True,
        )
    queued = []
    for number in sorted(chosen):
        result = store.rerun(sweep_id, number)
        if result.status == "queued" and result.trial is not None:
            jobs.enqueue_trial(store.r, sweep, result.trial)
            queued.append(number)
    return queued


def _move(
    store: Store, sweep_id: str, state: SweepState, allowed: list[SweepState], reason: str, *, waive: bool = False
) -> None:
    current = store.sweep(sweep_id).state
    if current == state:
        return
    if (
        store.set_sweep_state(sweep_id, state, allowed=allowed, reason=reason, waive_failures=waive, by_user=True)
        != "ok"
    ):
        raise SweepqError(f"sweep {sweep_id} is {current}; cannot move it to {state}")


def _cancel_queued(store: Store, sweep_id: str) -> int:
    n = 0
    for trial in store.trials(sweep_id, store.queued_numbers(sweep_id)):
        number = trial.number
        if store.request_stop(sweep_id, number, kind=StopKind.CANCEL, reason="sweep stopped") == "cancelled":
            jobs.cancel_job(store.r, trial.job_id)
            n += 1
    return n


def delete(store: Store, sweep_id: str, *, force: bool = False) -> int:
    """Remove a sweep and all it wrote (trials, metrics, output, its RQ jobs). A sweep with
    queued or running trials is refused unless `force`, which cancels it first (running
    programs are stopped by their workers). Returns the number of keys removed."""
    sweep = store.sweep(sweep_id)
    if sweep.active and not force:
        raise SweepqError(
            f"sweep {sweep_id} has {sweep.active} queued or running trials; "
            f"`sweepq cancel {sweep_id}` first, or `sweepq delete {sweep_id} --force`"
        )
    if sweep.active:
        cancel(store, sweep_id)
    for trial in store.trials(sweep_id, store.queued_numbers(sweep_id)):
        jobs.cancel_job(store.r, trial.job_id)
    return store.delete_sweep(sweep_id)
