"""End-to-end runs with real parts only: a real Redis-compatible server, real `rq worker`
processes, the real `sweepq` CLI and real training subprocesses from tests/programs/."""

from __future__ import annotations

import itertools
import json
import os
import statistics
from pathlib import Path

import pytest
import redis
from helpers import (  # noqa: F401 - fixtures
    PY,
    ROOT,
    base_env,
    cli,
    out_dir,
    plans,
    program,
    trials_json,
    wait_for,
    workers,
    write_config,
)
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import FinishedJobRegistry

from sweepq.store import Store

pytestmark = pytest.mark.timeout(120)


def _quad_grid() -> dict:
    return {
        "program": program("quad.py"),
        "method": "grid",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {
            "x": {"values": [0, 1, 2]},
            "y": {"values": [-2, 0, 3]},
            "sleep": {"value": 0.3},
        },
    }


def test_grid_runs_every_point_once_across_three_workers(r, workers, plans, redis_url):
    workers.start(3)
    plan = plans.start(_quad_grid())
    sid = plan.sweep_id()
    assert plan.wait(90) == 0, plan.stderr()

    rows = trials_json(redis_url, sid)
    points = [(t["params"]["x"], t["params"]["y"]) for t in rows]
    assert sorted(points) == sorted(itertools.product([0, 1, 2], [-2, 0, 3]))
    assert len(set(points)) == 9
    assert {t["state"] for t in rows} == {"finished"}
    assert all(t["attempts"] == 1 for t in rows)
    for t in rows:
        x, y = t["params"]["x"], t["params"]["y"]
        assert t["best"] == pytest.approx((x - 1) ** 2 + (y + 2) ** 2)
    # More than one of the three workers took trials.
    assert len({t["worker"] for t in rows}) >= 2, [t["worker"] for t in rows]

    store = Store(r)
    sweep = store.sweep(sid)
    assert sweep.state == "finished"
    assert sweep.counts["finished"] == 9 and sweep.created == 9
    # RQ agrees: every trial's job finished, and no other job of the sweep was ever run.
    finished = set(FinishedJobRegistry(queue=Queue("sweepq", connection=r)).get_job_ids())
    trial_jobs = {store.trial(sid, t["number"]).job_id for t in rows}
    assert trial_jobs <= finished
    assert {j for j in finished if j.startswith(f"sweepq-{sid}-")} == trial_jobs
    for jid in trial_jobs:
        assert Job.fetch(jid, connection=r).get_status() == JobStatus.FINISHED
