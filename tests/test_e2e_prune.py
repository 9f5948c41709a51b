"""End-to-end stopping: hyperband prunes through the real pruner, and people stop, cancel, kill
and rerun trials through the real CLI, with real `rq worker` processes and real programs."""

from __future__ import annotations

import json

import pytest

try:
    from tests.helpers import (  # noqa: F401 - fixtures
        PY,
        alive,
        base_env,
        cli,
        out_dir,
        plans,
        program,
        trials_json,
        wait_for,
        workers,
    )
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from helpers import (  # type: ignore[no-redef]  # noqa: F401
        PY,
        alive,
        base_env,
        cli,
        out_dir,
        plans,
        program,
        trials_json,
        wait_for,
        workers,
    )

from sweepq.stopping import Rule
from sweepq.store import Store

pytestmark = pytest.mark.timeout(120)

HYPERBAND = {"type": "hyperband", "max_iter": 27, "s": 2, "eta": 3}


def test_hyperband_prunes_the_losers_and_lets_the_winners_finish(r, workers, plans, redis_url):
    # Bands 3 and 9; every history has 8 values, so the decision is at band 3. The two winners
    # share one curve (ties survive, so neither can ever stop the other); the losers are slower
    # and clearly worse: with all four at band 3 the threshold is the winners' value.
    assert Rule.from_config(HYPERBAND).bands == (3, 9)
    workers.start(4)
    plan = plans.start({
        "program": program("curve.py"),
        "method": "grid",
        "metric": {"name": "loss", "goal": "minimize"},
        "early_terminate": HYPERBAND,
        "parameters": {
            "run": {"values": [
                {"slope": 1.0, "delay": 0.15, "tag": "w1"},
                {"slope": 1.0, "delay": 0.15, "tag": "w2"},
                {"slope": 0.1, "delay": 0.4, "tag": "l1"},
                {"slope": 0.2, "delay": 0.4, "tag": "l2"},
            ]},
            "steps": {"value": 8},
        },
        "command": ["${env}", "${interpreter}", "${program}", "${args_json}"],
    })
    sid = plan.sweep_id()
    assert plan.wait(90) == 0, plan.stderr()
    rows = {t["params"]["run"]["tag"]: t for t in trials_json(redis_url, sid)}
    assert set(rows) == {"w1", "w2", "l1", "l2"}
    for tag in ("w1", "w2"):
        assert rows[tag]["state"] == "finished", rows[tag]
        assert rows[tag]["history_len"] == 8
        assert rows[tag]["best"] == pytest.approx(2.0)
    for tag in ("l1", "l2"):
        t = rows[tag]
        assert t["state"] == "pruned", t
        assert 3 <= t["history_len"] < 8, t
        assert "band 3" in t["reason"] and "threshold" in t["reason"], t["reason"]
        assert "7" in t["reason"], t["reason"]  # the threshold: the winners' loss at t=3
    sweep = Store(r).sweep(sid)
    assert sweep.state == "finished"
    assert (sweep.counts["finished"], sweep.counts["pruned"]) == (2, 2)


def test_sdk_sees_should_stop_then_stopped_from_log_after_a_prune(r, workers, plans, redis_url,
                                                                  out_dir):
    # One band (9): the winner logs 10 values fast and ends; the loser keeps logging until the
    # pruner stops it at band 9. It catches SIGTERM, reads run.should_stop, logs once more.
    workers.start(2, env=base_env(SWEEPQ_TEST_OUT=str(out_dir)))
    plan = plans.start({
        "program": program("sdk_stop.py"),
        "method": "grid",
        "metric": {"name": "loss", "goal": "minimize"},
        "early_terminate": {"type": "hyperband", "max_iter": 27, "s": 1},
        "parameters": {"run": {"values": [
            {"slope": 1.0, "steps": 10, "delay": 0.05, "tag": "winner"},
            {"slope": 0.1, "steps": 200, "delay": 0.25, "tag": "loser"},
        ]}},
    }, grace=5)
    sid = plan.sweep_id()
    assert plan.wait(100) == 0, plan.stderr()
    rows = {t["params"]["run"]["tag"]: t for t in trials_json(redis_url, sid)}
    loser = rows["loser"]
    assert loser["state"] == "pruned", loser
    assert "band 9" in loser["reason"], loser["reason"]
    seen = json.loads((out_dir / f"stop-{loser['number']}.json").read_text())
    assert seen["should_stop_at_start"] is False
    assert seen.get("sigterm") is True, seen
    assert seen.get("should_stop") is True, seen
    assert "stopped" in seen and "pruned" in seen["stopped"], seen
    assert "completed" not in seen
    winner = rows["winner"]
    assert winner["state"] == "finished", winner
    seen = json.loads((out_dir / f"stop-{winner['number']}.json").read_text())
    assert seen.get("completed") is True and "stopped" not in seen and not seen["sigterm"], seen
