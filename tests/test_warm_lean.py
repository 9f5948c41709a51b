"""The lean trial path: what the runner reads per trial must not grow with the sweep's config
(a 10,000-value grid once cost seconds per trial, re-validated by every trial)."""

from __future__ import annotations

import time

from sweepq import command
from sweepq.config import SweepConfig
from sweepq.store import Store


def _per_trial_read(r, n_values: int) -> float:
    config = SweepConfig.from_dict(
        {"program": "train.py", "method": "grid", "parameters": {"i": {"values": list(range(n_values))}}}
    )
    sid = Store(r).create_sweep(config)
    store = Store(r)  # a fresh process's store: its first read loads the stored config once
    store.sweep(sid).config  # noqa: B018 - the once-per-process read, outside the timing
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for k in range(20):
            sweep = store.sweep(sid)  # what the runner reads for each trial
            command.render(sweep.config, {"i": k}, args_json_file="/tmp/p.json", environ={})
        best = min(best, (time.perf_counter() - t) / 20)
    return best


def test_per_trial_reads_do_not_grow_with_a_10k_value_grid(r):
    small, large = _per_trial_read(r, 10), _per_trial_read(r, 10_000)
    # Validating 10k values takes hundreds of ms; reading the stored config back costs the same
    # at any size. Generous bounds: a shared CI box is noisy, a re-validation is not subtle.
    assert large < 3 * small + 0.002, (small, large)
    assert large < 0.02, large


def test_a_warm_shutdown_asked_between_two_trials_does_not_block_in_the_next_pop(r, monkeypatch) -> None:
    """Between two trials a warm worker still counts as busy (its last trial's bookkeeping
    waits), so RQ's SIGTERM handler only sets `_stop_requested`: the pop that follows must end
    the loop instead of blocking for RQ's dequeue timeout (`sweepq plan` waited 15 s to exit)."""
    from sweepq import trust, warm

    monkeypatch.setattr(warm.reaper, "become_subreaper", lambda: False)  # not the test process
    monkeypatch.setenv(trust.ENV_TRUSTED_KEYS, trust.Signer("k" * 40, source="test").public.text)
    worker = warm.WarmWorker(["an-empty-queue"], connection=r)
    worker._stop_requested = True
    started = time.monotonic()
    assert worker.dequeue_job_and_maintain_ttl(30) is None
    assert time.monotonic() - started < 5


def test_a_warm_shutdown_ends_rqs_pubsub_thread_instead_of_waiting_out_its_join(r, monkeypatch) -> None:
    """RQ sent UNSUBSCRIBE before telling its pubsub thread to stop: the thread often read the
    reply, looped and blocked in its 60 s read again, and RQ's `join(timeout=1)` gave up with the
    thread still alive (half of all local `plan` runs ended a second late). The thread must be
    gone when `unsubscribe` returns, however the two threads are scheduled."""
    from sweepq import trust, warm

    monkeypatch.setattr(warm.reaper, "become_subreaper", lambda: False)  # not the test process
    monkeypatch.setenv(trust.ENV_TRUSTED_KEYS, trust.Signer("k" * 40, source="test").public.text)
    worker = warm.WarmWorker(["an-empty-queue"], connection=r)
    worker.subscribe()
    time.sleep(0.05)  # the thread is in its blocking read
    pubsub = worker.pubsub
    send = pubsub.unsubscribe

    def unsubscribe_then_stall(*args: object) -> None:
        send(*args)
        time.sleep(0.3)  # the caller descheduled: the thread has the reply before any stop

    monkeypatch.setattr(pubsub, "unsubscribe", unsubscribe_then_stall)
    worker.unsubscribe()
    assert worker.pubsub_thread is not None and not worker.pubsub_thread.is_alive()
