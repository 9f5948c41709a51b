"""The store: records in and out, every transition fenced by attempt, on a real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from sweepq import config as cfgmod
from sweepq.errors import NotFound
from sweepq.model import Settings, StopKind, SweepState, TrialState, job_id
from sweepq.store import Keys, LogRecord, Store

CONFIG = {
    "program": "train.py",
    "method": "random",
    "metric": {"name": "loss", "goal": "maximize", "target": 0.9},
    "parameters": {"lr": {"min": 0.001, "max": 0.1, "distribution": "log_uniform_values"}, "opt": {"value": "adam"}},
}


def _store(r: redis.Redis, now: list[float] | None = None) -> tuple[Store, str]:
    clock = now or [1000.0]
    store = Store(r, now=lambda: clock[0])
    sid = store.create_sweep(cfgmod.load(CONFIG), Settings(seed=7, grace=2.5, queue="q1"), cap=3)
    return store, sid


def test_a_sweep_round_trips_config_settings_and_counts(r: redis.Redis) -> None:
    store, sid = _store(r)
    sweep = Store(r).sweep(sid)  # a fresh Store: nothing cached
    assert sweep.state is SweepState.RUNNING and sweep.cap == 3
    assert sweep.settings == Settings(seed=7, grace=2.5, queue="q1")
    assert sweep.config == cfgmod.load(CONFIG)
    assert sweep.metric is not None and sweep.metric.maximize and sweep.metric.reached(0.95)
    assert all(sweep.counts[s] == 0 for s in TrialState)
    # The config lives apart from the sweep hash, which stays small.
    assert b"config" not in r.hgetall(Keys(sid).sweep)
    assert json.loads(r.get(Keys(sid).config) or b"{}") == cfgmod.load(CONFIG).to_dict()
    with pytest.raises(NotFound):
        store.sweep("nosuchid")


def test_a_stored_config_is_read_back_without_validating_it_again(r: redis.Redis) -> None:
    """A rule tightened in a later version must not break a stored sweep: the normalized form is
    trusted. Written here with a value today's validator refuses (max < min)."""
    store, sid = _store(r)
    raw = json.loads(r.get(Keys(sid).config) or b"{}")
    raw["parameters"]["lr"]["max"] = 0.0001
    r.set(Keys(sid).config, json.dumps(raw))
    sweep = Store(r).sweep(sid)
    with pytest.raises(cfgmod.ConfigError):
        cfgmod.parse(raw)
    assert sweep.config.space.leaves[0][1].to_dict()["max"] == 0.0001


def test_transitions_return_the_record_they_wrote_and_derive_job_ids(r: redis.Redis) -> None:
    now = [1000.0]
    store, sid = _store(r, now)
    assert store.create_trial(sid, 0, params={"lr": 0.01}, encoded={"lr": 0.5}) == "ok"
    assert store.create_trial(sid, 0, params={"lr": 0.02}, encoded={}) == "race"
    claim = store.claim(sid, 0, attempt=1, worker="w1", host="h1")
    assert claim.status == "ok" and claim.trial is not None
    assert (claim.trial.state, claim.trial.worker, claim.trial.job_id) == ("running", "w1", job_id(sid, 0, 1))
    now[0] += 10
    requeued = store.finish(sid, 0, attempt=1, outcome="requeue", reason="preempted")
    assert requeued.status == "queued" and requeued.trial is not None
    assert requeued.trial.attempt == 2 and requeued.trial.job_id == job_id(sid, 0, 2)
    assert requeued.trial.preemptions == 1
    assert store.claim(sid, 0, attempt=1, worker="old", host="h").status == "stale"
    assert store.claim(sid, 0, attempt=2, worker="w2", host="h2").status == "ok"
    done = store.finish(sid, 0, attempt=2, outcome="finished", exit_code=0)
    assert done.status == "finished" and done.trial is not None and done.trial.exit_code == 0
    again = store.rerun(sid, 0)
    assert again.status == "queued" and again.trial is not None and again.trial.job_id == job_id(sid, 0, 3)
    counts = store.sweep(sid).counts
    assert (counts["queued"], counts["finished"], counts["running"]) == (1, 0, 0)


def test_a_prune_outlives_the_worker_that_was_stopping(r: redis.Redis) -> None:
    """A worker killed during the SIGTERM grace of a prune: the reaper ends the trial pruned."""
    now = [1000.0]
    store, sid = _store(r, now)
    store.create_trial(sid, 0, params={"lr": 0.01}, encoded={})
    store.claim(sid, 0, attempt=1, worker="w1", host="h")
    assert store.request_stop(sid, 0, kind=StopKind.PRUNE, reason="below the band") == "signalled"
    now[0] += 100
    result = store.expire(sid, 0, attempt=1, cutoff=now[0] - 10, max_attempts=3)
    assert result.status == "pruned" and result.trial is not None
    assert result.trial.attempt == 1 and "below the band" in (result.trial.reason or "")


def test_wake_lists_are_per_attempt(r: redis.Redis) -> None:
    """An old attempt's "done" must never wake (and so end) the live attempt's heartbeat."""
    now = [1000.0]
    store, sid = _store(r, now)
    store.create_trial(sid, 0, params={"lr": 0.01}, encoded={})
    store.claim(sid, 0, attempt=1, worker="w1", host="h")
    now[0] += 100
    store.expire(sid, 0, attempt=1, cutoff=now[0] - 10, max_attempts=3)
    store.claim(sid, 0, attempt=2, worker="w2", host="h")
    store.wake(sid, 0, attempt=1, message="done")  # the partitioned old runner closes
    assert store.wait_wake(sid, 0, attempt=2, timeout=0.1) is None
    assert store.request_stop(sid, 0, kind=StopKind.KILL, reason="by user") == "signalled"
    assert store.wait_wake(sid, 0, attempt=2, timeout=1) == "kill"


def test_log_batches_are_fenced_and_output_is_capped_in_bytes(r: redis.Redis) -> None:
    store, sid = _store(r)
    store.create_trial(sid, 0, params={"lr": 0.01}, encoded={})
    store.claim(sid, 0, attempt=1, worker="w1", host="h")
    sweep = store.sweep(sid)
    records = [LogRecord(i, {"loss": v}, v) for i, v in enumerate([0.2, 0.7, 0.5])]
    state, stop = store.log(sweep, 0, attempt=1, records=records, output=["x" * 100_000, "short"])
    assert (state, stop) == (TrialState.RUNNING, None)
    trial = store.trial(sid, 0)
    assert (trial.best, trial.last, trial.history_len) == (0.7, 0.5, 3)  # maximize
    assert [len(line) for line in store.output(sid, 0)] == [4096, 5]
    assert store.log(sweep, 0, attempt=2, records=records[:1])[0] == "stale"
    # Printed metrics are ignored once the program reports through the SDK.
    assert store.annotate(sid, 0, attempt=1, sdk=1)
    store.log(sweep, 0, attempt=1, records=[LogRecord(9, {"loss": 0.99}, 0.99)], source="stdout")
    assert store.trial(sid, 0).best == 0.7


def test_one_batch_of_rows_is_capped_row_by_row_and_keeps_last_and_best(r: redis.Redis) -> None:
    """The rows that reach the runner together go to Redis in one call of log.lua: the per-trial
    cap, the history, last and best come out as if each row had been its own call."""
    store = Store(r, now=lambda: 1000.0)
    sid = store.create_sweep(cfgmod.load(CONFIG), Settings(seed=7, metric_cap=4, queue="q1"))
    store.create_trial(sid, 0, params={"lr": 0.01}, encoded={})
    store.claim(sid, 0, attempt=1, worker="w1", host="h")
    sweep = store.sweep(sid)
    values = [0.1, 0.9, None, 0.3, 0.95, 0.2]  # maximize; the fifth and sixth pass the cap of 4
    records = [LogRecord(i, {"acc": v}, v) for i, v in enumerate(values)]
    assert store.log(sweep, 0, attempt=1, records=records) == (TrialState.RUNNING, None)
    trial = store.trial(sid, 0)
    assert (trial.logged, trial.dropped, trial.history_len) == (6, 2, 5)
    assert (trial.best, trial.last) == (0.95, 0.2)
    assert store.histories(sid, [0])[0] == [0.1, 0.9, 0.3]  # what the cap let through
    assert store.log(sweep, 0, attempt=2, records=records) == ("stale", None)
    assert store.trial(sid, 0).logged == 6


def test_annotate_is_fenced_and_limited_to_the_attempts_own_fields(r: redis.Redis) -> None:
    store, sid = _store(r)
    store.create_trial(sid, 0, params={"lr": 0.01}, encoded={})
    store.claim(sid, 0, attempt=1, worker="w1", host="h")
    assert not store.annotate(sid, 0, attempt=2, preempting=1)
    assert not store.annotate(sid, 0, attempt=1, state="finished")
    assert store.annotate(sid, 0, attempt=1, preempting=1, summary={"acc": 1})
    trial = store.trial(sid, 0)
    assert trial.preempting and trial.summary == {"acc": 1} and trial.state == "running"


def test_the_summary_a_finish_carries_is_written_by_the_attempt_that_owns_the_trial_only(r: redis.Redis) -> None:
    """The runner hands the program's last word to the finish script (one round trip fewer):
    a superseded attempt's summary, or one that answers 'unlogged', writes nothing, and a
    requeued trial's next attempt starts without its predecessor's."""
    store, sid = _store(r)
    store.create_trial(sid, 0, params={"lr": 0.01}, encoded={})
    store.claim(sid, 0, attempt=1, worker="w1", host="h")
    assert (
        store.finish(sid, 0, attempt=1, outcome="finished", checks="metric", summary='{"acc": 1}').status == "unlogged"
    )
    assert store.trial(sid, 0).summary == {}
    assert store.finish(sid, 0, attempt=1, outcome="requeue", summary='{"acc": 2}').status == "queued"
    assert store.finish(sid, 0, attempt=1, outcome="finished", summary='{"acc": 3}').status == "stale"
    trial = store.trial(sid, 0)
    assert trial.attempt == 2 and trial.summary == {}
    store.claim(sid, 0, attempt=2, worker="w1", host="h")
    assert store.finish(sid, 0, attempt=2, outcome="finished", summary='{"acc": 4}').status == "finished"
    assert store.trial(sid, 0).summary == {"acc": 4}


def test_leases_have_one_holder(r: redis.Redis) -> None:
    store, sid = _store(r)
    assert store.acquire_lease(sid, "planner", "a", ttl=5)
    assert not store.acquire_lease(sid, "planner", "b", ttl=5)
    assert store.acquire_lease(sid, "planner", "a", ttl=5)  # renewal
    store.release_lease(sid, "planner", "b")
    assert store.lease_holder(sid, "planner") == "a"
    store.release_lease(sid, "planner", "a")
    assert store.lease_holder(sid, "planner") is None


def test_fail_pause_is_waived_once_a_person_resumes(r: redis.Redis, tmp_path: Path) -> None:
    store, sid = _store(r)
    assert store.set_sweep_state(sid, SweepState.PAUSED, allowed=[SweepState.RUNNING], reason="x") == "ok"
    assert not store.sweep(sid).failures_waived
    assert store.set_sweep_state(sid, SweepState.FINISHED, allowed=[SweepState.RUNNING]) == "paused"
    store.set_sweep_state(sid, SweepState.RUNNING, allowed=[SweepState.PAUSED], waive_failures=True)
    assert store.sweep(sid).failures_waived


def test_delete_removes_every_key_of_the_sweep_and_its_jobs_only(r: redis.Redis) -> None:
    from sweepq import control, jobs
    from sweepq.errors import SweepqError

    store, sid = _store(r)
    _, other = _store(r)
    for s in (sid, other):
        store.create_trial(s, 0, params={"lr": 0.01}, encoded={})
        jobs.enqueue_trial(r, store.sweep(s), store.trial(s, 0))
    with pytest.raises(SweepqError, match="--force"):
        control.delete(store, sid)
    assert control.delete(store, sid, force=True) > 3
    assert not list(r.scan_iter(match=f"*{sid}*"))
    assert store.sweep_ids() == [other]
    assert store.trial(other, 0).state == "queued" and r.exists(f"rq:job:{store.trial(other, 0).job_id}")


def test_retention_lets_an_ended_sweeps_keys_expire(r: redis.Redis) -> None:
    store, sid = _store(r)
    store.create_trial(sid, 0, params={"lr": 0.01}, encoded={})
    store.expire_sweep(sid, 60)
    ttls = [r.ttl(k) for k in store.sweep_keys(sid)]
    assert ttls and all(0 < t <= 60 for t in ttls)
    store.expire_sweep(sid, 1)
    import time

    time.sleep(1.5)
    assert store.sweep_ids() == []
