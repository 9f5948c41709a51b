"""The planner, driven step by step against a real server (no workers: the tests play them)."""

from __future__ import annotations

from pathlib import Path

import redis
from rq import Queue

from sweepq import config as cfgmod
from sweepq.model import Settings, SweepState, TrialState
from sweepq.planner import Planner
from sweepq.store import LogRecord, Store


def _sweep(store: Store, *, method: str = "random", cap: int | None = 4, **settings: float) -> str:
    cfg = cfgmod.load(
        {
            "program": "train.py",
            "method": method,
            "metric": {"name": "loss", "goal": "minimize", "target": 0.05},
            "parameters": {"x": {"values": [1, 2, 3]}} if method == "grid" else {"x": {"min": 0.0, "max": 1.0}},
        }
    )
    return store.create_sweep(cfg, Settings(seed=3, queue="planner-test", **settings), cap=cap)  # type: ignore[arg-type]


def _run(store: Store, sid: str, number: int, loss: float, *, attempt: int = 1) -> None:
    """Play a worker: claim, log one value, finish."""
    assert store.claim(sid, number, attempt=attempt, worker="w", host="h").status == "ok"
    store.log(store.sweep(sid), number, attempt=attempt, records=[LogRecord(0, {"loss": loss}, loss)])
    store.finish(sid, number, attempt=attempt, outcome="finished", exit_code=0)


def test_fills_the_queue_to_the_local_workers_and_enqueues_each_trial(r: redis.Redis) -> None:
    store = Store(r)
    sid = _sweep(store)
    planner = Planner(store, sid, local_workers=2)
    progress = planner.step()
    assert progress.sweep.counts[TrialState.QUEUED] == 2 and not progress.done
    jobs = Queue("planner-test", connection=r).job_ids
    assert jobs == [store.trial(sid, 0).job_id, store.trial(sid, 1).job_id]
    planner.step()
    assert store.sweep(sid).created == 2  # already full: nothing more


def test_tracks_the_best_and_finishes_at_the_cap(r: redis.Redis) -> None:
    store = Store(r)
    sid = _sweep(store, cap=3)
    planner = Planner(store, sid, local_workers=1)
    losses = [0.5, 0.2, 0.4]
    for n, loss in enumerate(losses):
        planner.step()
        _run(store, sid, n, loss)
    progress = planner.step()
    assert progress.best is not None and progress.best.number == 1 and progress.best.best == 0.2
    assert progress.done and progress.sweep.state is SweepState.FINISHED


def test_metric_target_stops_the_sweep(r: redis.Redis) -> None:
    store = Store(r)
    sid = _sweep(store, cap=10)
    planner = Planner(store, sid, local_workers=1)
    planner.step()
    _run(store, sid, 0, 0.01)
    planner.step()
    sweep = store.sweep(sid)
    assert sweep.state is SweepState.STOPPED and "metric.target" in (sweep.state_reason or "")


def test_a_restarted_planner_continues_the_numbering_and_the_grid(r: redis.Redis) -> None:
    store = Store(r)
    sid = _sweep(store, method="grid", cap=None)
    first = Planner(store, sid, local_workers=1)
    first.step()
    _run(store, sid, 0, 0.3)
    second = Planner(store, sid, local_workers=1)  # the first one died
    second.step()
    assert [t.params for t in store.trials(sid)] == [{"x": 1}, {"x": 2}]


def test_broken_program_pauses_once_and_a_resume_waives_it(r: redis.Redis, tmp_path: Path) -> None:
    from sweepq import control

    store = Store(r)
    sid = _sweep(store, cap=None, fail_pause=2)
    planner = Planner(store, sid, local_workers=2)
    planner.step()
    for n in (0, 1):
        store.claim(sid, n, attempt=1, worker="w", host="h")
        store.finish(sid, n, attempt=1, outcome="failed", exit_code=1, reason="exit code 1: boom")
    planner.step()
    sweep = store.sweep(sid)
    assert sweep.state is SweepState.PAUSED and "boom" in (sweep.state_reason or "")
    control.resume(store, sid)
    planner.step()
    assert store.sweep(sid).state is SweepState.RUNNING


def test_reaps_a_lost_attempt_and_enqueues_the_next_one(r: redis.Redis) -> None:
    now = [1000.0]
    store = Store(r, now=lambda: now[0])
    sid = _sweep(store, cap=1, heartbeat_timeout=4.0)
    planner = Planner(store, sid, local_workers=1, now=lambda: now[0])
    planner.step()
    store.claim(sid, 0, attempt=1, worker="w", host="h")
    now[0] += 10
    planner._last_reap = -1e9
    planner.step()
    trial = store.trial(sid, 0)
    assert (trial.state, trial.attempt) == (TrialState.QUEUED, 2)
    assert trial.job_id in Queue("planner-test", connection=r).job_ids


def test_the_grid_is_planned_by_index_in_w_and_b_order() -> None:
    """A resumed planner computes grid point n instead of building a million-point list."""
    cfg = cfgmod.load(
        {
            "method": "grid",
            "parameters": {
                "b": {"values": [1, 1.0, 2, "x"]},
                "a": {"parameters": {"lr": {"values": [0.1, 0.01]}, "depth": {"min": 1, "max": 3}}},
                "c": {"value": {"k": [1, 2]}},
                "d": {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.25},
            },
        }
    )
    index = cfg.space.grid_index()
    assert len(index) == cfg.space.grid_size() == len(cfg.space.grid())
    assert [index[n] for n in range(len(index))] == cfg.space.grid()
