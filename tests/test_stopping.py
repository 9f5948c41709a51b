"""Early termination rules: W&B's hyperband exactly (golden rows from W&B's engine) and ASHA."""

from __future__ import annotations

import ast
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sweepq.errors import ConfigError
from sweepq.stopping import (
    Decision,
    Rule,
    Stop,
    clean_history,
    decide,
    evaluate,
    stop_runs,
    thresholds,
)

GOLDEN = Path(__file__).parent / "golden" / "hyperband.json"


def _config(et: dict[str, Any], goal: str | None = "minimize") -> dict[str, Any]:
    metric: dict[str, Any] = {"name": "loss"}
    if goal is not None:
        metric["goal"] = goal
    return {"method": "random", "metric": metric, "early_terminate": et, "parameters": {"x": {"values": [1, 2]}}}


def _runs(*specs: tuple[str, str, list[Any]]) -> list[dict[str, Any]]:
    return [{"name": n, "state": s, "history": h} for n, s, h in specs]


HB = {"type": "hyperband", "min_iter": 1, "eta": 2}  # bands 1, 2, 4, 8, ...
HB3 = {"type": "hyperband", "min_iter": 1}  # eta 3: of 2 or 3 runs only the best survives


# -- bands ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("et", "bands"),
    [
        ({"max_iter": 81, "s": 3}, (3, 9, 27)),
        ({"max_iter": 81, "s": 5}, (1, 3, 9, 27)),  # 81/3**5 < 1: W&B stops there
        ({"max_iter": 10, "s": 3}, (1, 3)),
        ({"max_iter": 5, "s": 2, "eta": 2}, (1, 2)),
        ({"max_iter": 27, "s": 2.0}, (3, 9)),  # s is a "number" in W&B's schema
        ({"max_iter": 81, "s": 2, "min_iter": 1}, (9, 27)),  # max_iter + s wins, as in W&B
        ({"max_iter": 81, "min_iter": 2}, (2, 6, 18, 54)),  # no s: min_iter (W&B crashes)
    ],
)
def test_hyperband_bands_from_max_iter(et: dict[str, Any], bands: tuple[int, ...]) -> None:
    got = Rule.from_config({"type": "hyperband", **et}).bands
    assert got[: len(bands)] == bands


@pytest.mark.parametrize(
    ("et", "first"),
    [
        ({"min_iter": 1}, (1, 3, 9, 27, 81)),
        ({"min_iter": 2, "eta": 2.5}, (2, 5, 12, 31)),  # int(min_iter * eta**k)
        ({"min_iter": 3, "eta": 2}, (3, 6, 12, 24)),
    ],
)
def test_hyperband_bands_from_min_iter(et: dict[str, Any], first: tuple[int, ...]) -> None:
    rule = Rule.from_config({"type": "hyperband", **et})
    assert rule.bands[: len(first)] == first
    assert list(rule.bands) == sorted(set(rule.bands))
    assert rule.eta == et.get("eta", 3) and rule.strict is True  # W&B's defaults


def test_huge_eta_bands_stop_before_overflow() -> None:
    assert Rule.from_config({"type": "hyperband", "min_iter": 1, "eta": 1e10}).bands[:2] == (1, 10_000_000_000)


@pytest.mark.parametrize(
    ("et", "path"),
    [
        ({"type": "hyperband", "max_iter": 2, "s": 3}, ("early_terminate",)),  # no bands
        ({"type": "hyperband", "min_iter": 1, "eta": 1}, ("early_terminate", "eta")),
        ({"type": "hyperband", "min_iter": 0}, ("early_terminate", "min_iter")),
        ({"type": "hyperband", "min_iter": 1.5}, ("early_terminate", "min_iter")),
        ({"type": "hyperband", "max_iter": 9, "s": 1.5}, ("early_terminate", "s")),
        ({"type": "hyperband", "max_iter": 9}, ("early_terminate",)),
        ({"type": "hyperband", "min_iter": 1, "strict": "yes"}, ("early_terminate", "strict")),
        ({"type": "median", "min_iter": 1}, ("early_terminate", "type")),
    ],
)
def test_invalid_early_terminate_is_a_config_error(et: dict[str, Any], path: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError) as err:
        Rule.from_config(et)
    assert path in [v.path for v in err.value.violations]


# -- hyperband decisions ----------------------------------------------------------------------


def test_wandb_docstring_example_strict_and_not_strict() -> None:
    runs = _runs(
        ("a", "finished", [10, 9]),
        ("b", "running", [10, 10]),
        ("c", "running", [10, 8, 8]),
        ("d", "running", [10, 7, 7]),
        ("e", "finished", [10, 6, 6]),
    )
    et = {"type": "hyperband", "max_iter": 5, "eta": 2, "s": 2}
    assert stop_runs(_config(et), runs) == ["b"]
    assert stop_runs(_config({**et, "strict": False}), runs) == ["b"]


def test_strict_uses_value_at_band_and_not_strict_uses_best_so_far() -> None:
    # band 2 threshold: sorted [1, 2, 3, 5][int(4 / 2)] == 3; "late" was good early, bad at band 2
    runs = _runs(
        ("f1", "finished", [9, 1]), ("f2", "finished", [9, 2]), ("f3", "finished", [9, 3]), ("late", "running", [0, 5])
    )
    assert stop_runs(_config(HB), runs) == ["late"]
    assert stop_runs(_config({**HB, "strict": False}), runs) == []


def test_not_strict_min_covers_values_past_the_band() -> None:
    # len 3 -> band 2; strict judges h[1] = 5 > 3, not strict judges min(h) = 0.5
    runs = _runs(
        ("f1", "finished", [9, 1]),
        ("f2", "finished", [9, 2]),
        ("f3", "finished", [9, 3]),
        ("r", "running", [9, 5, 0.5]),
    )
    assert stop_runs(_config(HB), runs) == ["r"]
    assert stop_runs(_config({**HB, "strict": False}), runs) == []


def test_judged_at_largest_band_reached() -> None:
    # r has 3 values: judged at band 2 (bands 1, 2, 4), where it is the best
    runs = _runs(("a", "finished", [0, 5, 5, 5]), ("b", "finished", [0, 6, 6, 6]), ("r", "running", [9, 1, 9]))
    assert stop_runs(_config(HB), runs) == []


def test_maximize_negates_history() -> None:
    runs = _runs(
        ("hi", "finished", [0.9]), ("mid", "finished", [0.8]), ("lo", "running", [0.1]), ("top", "running", [0.95])
    )
    assert stop_runs(_config(HB, "maximize"), runs) == ["lo"]
    assert stop_runs(_config(HB, "minimize"), runs) == ["top"]  # "hi" finished: not judged


def test_goal_defaults_to_minimize() -> None:
    runs = _runs(("a", "running", [1.0]), ("b", "running", [2.0]))
    assert stop_runs(_config(HB3, None), runs) == ["b"]


def test_ties_survive() -> None:
    runs = _runs(*[(f"r{i}", "running", [1.0, 1.0]) for i in range(6)])
    assert stop_runs(_config(HB), runs) == []


def test_lone_run_never_stopped() -> None:
    for strict in (True, False):
        runs = _runs(("only", "running", [5.0, 9.0, 100.0, 1e9]))
        assert stop_runs(_config({**HB, "strict": strict}), runs) == []


def test_only_running_runs_are_judged_but_every_state_sets_thresholds() -> None:
    states = ["finished", "failed", "crashed", "killed", "pending", "pruned", "preempted"]
    good = [(f"g{i}", s, [0.1]) for i, s in enumerate(states)]
    bad = [(f"b_{s}", s, [9.0]) for s in [*states, "running"]]
    assert stop_runs(_config(HB3), _runs(*good, *bad)) == ["b_running"]
    # without the good runs of other states the bad ones all tie, and ties survive
    assert stop_runs(_config(HB3), _runs(*bad)) == []


def test_non_finite_and_non_numeric_values_are_dropped() -> None:
    noise = [math.nan, math.inf, -math.inf, None, "0.1", True, False, [1]]
    assert clean_history([*noise, 2, 1.5]) == [2.0, 1.5]
    # with noise dropped, "r" has one value (band 1) and is the worst there
    runs = _runs(
        ("a", "finished", [1.0]), ("b", "finished", [2.0]), ("r", "running", [math.nan, 5.0, math.inf, "x", None])
    )
    assert stop_runs(_config(HB), runs) == ["r"]


def test_wandb_history_rows_are_accepted() -> None:
    runs = _runs(("a", "finished", [{"loss": 1.0}, {"acc": 3}]), ("r", "running", [{"_step": 0}, {"loss": 5.0}]))
    assert stop_runs(_config(HB3), runs) == ["r"]


def test_no_early_terminate_stops_nothing() -> None:
    config = _config(HB)
    del config["early_terminate"]
    assert stop_runs(config, _runs(("a", "running", [1.0]), ("b", "running", [9.0]))) == []


def test_early_terminate_without_metric_is_a_config_error() -> None:
    config = _config(HB)
    del config["metric"]
    with pytest.raises(ConfigError):
        stop_runs(config, [])


def test_threshold_index_is_wandb_float_rounding() -> None:
    # int((1/49) * 49) == 0 in floats, not 1: W&B's threshold is the best of 49
    runs = _runs(*[(f"r{i}", "running", [float(i)]) for i in range(49)])
    assert stop_runs(_config({**HB, "eta": 49}), runs) == [f"r{i}" for i in range(1, 49)]


def test_decide_reason_names_band_value_and_threshold() -> None:
    hist = {"a": [1.0, 0.37], "b": [1.0, 0.30], "c": [1.0, 0.41]}
    assert decide(HB, "minimize", hist, {"c"}) == [Stop("c", "hyperband band 2: 0.41 > threshold 0.37 (strict)")]
    flipped = {k: [-v for v in h] for k, h in hist.items()}
    assert decide(HB, "maximize", flipped, {"c"}) == [Stop("c", "hyperband band 2: -0.41 < threshold -0.37 (strict)")]


def test_decide_accepts_keyword_goal_and_duck_typed_early_terminate() -> None:
    @dataclass(frozen=True)
    class EarlyTerminate:  # the shape of config.EarlyTerminate
        type: str
        min_iter: int | None
        max_iter: int | None
        s: int | None
        eta: float
        strict: bool

    et = EarlyTerminate("hyperband", 1, None, None, 3.0, True)
    hist = {"a": [1.0], "b": [2.0]}
    assert decide(et, goal="minimize", histories=hist, running={"a", "b"}) == [
        Stop("b", "hyperband band 1: 2 > threshold 1 (strict)")
    ]
    assert Rule.from_config(et) == Rule("hyperband", Rule.from_config(HB3).bands, 3.0, True)


def test_decide_order_follows_histories_and_ignores_unknown_running_names() -> None:
    hist = {"z": [5.0], "a": [1.0], "m": [4.0], "b": [0.5]}  # threshold sorted[int(4/3)] = 1
    assert [s.name for s in decide(HB3, "minimize", hist, {"m", "z", "a", "ghost"})] == ["z", "m"]


def test_thresholds_in_metric_units() -> None:
    hist = {"a": [3.0, 1.0], "b": [2.0], "c": [1.0]}
    got = thresholds(HB, "minimize", hist)
    assert got[:3] == (2.0, 1.0, math.inf)  # band 1: sorted [1,2,3][1]; band 2: [1][0]
    assert thresholds(HB, "maximize", hist)[:3] == (2.0, 1.0, -math.inf)


def _golden_cases() -> list[dict[str, Any]]:
    return list(json.loads(GOLDEN.read_text())["cases"])


@pytest.mark.parametrize("case", _golden_cases(), ids=lambda c: None)
def test_hyperband_matches_wandb_golden(case: dict[str, Any]) -> None:
    assert stop_runs(case["config"], case["runs"]) == case["stop"]
    name = case["config"]["metric"]["name"]
    flat = [{**r, "history": [row[name] for row in r["history"] if name in row]} for r in case["runs"]]
    assert stop_runs(case["config"], flat) == case["stop"]


# -- ASHA ------------------------------------------------------------------------------------


ASHA = {"type": "asha", "min_iter": 1, "max_iter": 27}  # eta 3: rungs 1, 3, 9


@pytest.mark.parametrize(
    ("et", "rungs"),
    [
        ({"min_iter": 1, "max_iter": 27}, (1, 3, 9)),  # no decision at max_iter
        ({"min_iter": 1, "max_iter": 28}, (1, 3, 9, 27)),
        ({"min_iter": 2, "max_iter": 100, "eta": 2}, (2, 4, 8, 16, 32, 64)),
        ({"max_iter": 81, "s": 3}, (3, 9, 27)),  # hyperband's bands
    ],
)
def test_asha_rungs(et: dict[str, Any], rungs: tuple[int, ...]) -> None:
    assert Rule.from_config({"type": "asha", **et}).rungs == rungs


def test_asha_min_iter_only_is_unbounded() -> None:
    assert Rule.from_config({"type": "asha", "min_iter": 1}).rungs[:4] == (1, 3, 9, 27)


def test_asha_lone_run_continues() -> None:
    assert decide(ASHA, "minimize", {"a": [9.0] * 20}, {"a"}) == []


def test_asha_fewer_than_eta_values_only_best_continues() -> None:
    hist = {"a": [1.0], "b": [2.0]}
    assert [s.name for s in decide(ASHA, "minimize", hist, {"a", "b"})] == ["b"]


def test_asha_keeps_best_floor_n_over_eta() -> None:
    hist = {f"r{i}": [float(i)] for i in range(7)}  # floor(7/3) = 2 continue
    stops = decide(ASHA, "minimize", hist, set(hist))
    assert [s.name for s in stops] == ["r2", "r3", "r4", "r5", "r6"]
    assert stops[0].reason == "asha rung 1: 2 > 1, not in the best 2 of 7"


def test_asha_ties_survive() -> None:
    hist = {f"r{i}": [1.0, 1.0, 1.0] for i in range(5)}
    assert decide(ASHA, "minimize", hist, set(hist)) == []


def test_asha_maximize() -> None:
    hist = {"a": [0.9], "b": [0.1], "c": [0.5]}
    assert [s.name for s in decide(ASHA, "maximize", hist, set(hist))] == ["b", "c"]


def test_asha_judges_every_rung_reached_and_stops_at_first_failure() -> None:
    # rung 1: r is best; rung 3: r is worst of 3
    hist = {"a": [5.0, 5.0, 1.0], "b": [5.0, 5.0, 2.0], "r": [0.0, 0.0, 9.0]}
    d = evaluate(ASHA, "minimize", hist, {"r"})
    assert d.stops == (Stop("r", "asha rung 3: 9 > 1, not in the best 1 of 3"),)
    assert d.promoted == {"r": 1}


def test_asha_only_running_judged_but_every_state_counts() -> None:
    hist = {"done1": [0.1], "done2": [0.2], "r": [0.3]}
    assert [s.name for s in decide(ASHA, "minimize", hist, {"r"})] == ["r"]


def test_asha_not_strict_uses_best_up_to_rung() -> None:
    hist = {"a": [5.0, 5.0, 2.0], "b": [5.0, 5.0, 3.0], "r": [1.0, 9.0, 9.0]}
    assert [s.name for s in decide(ASHA, "minimize", hist, {"r"})] == ["r"]
    assert decide({**ASHA, "strict": False}, "minimize", hist, {"r"}) == []


def test_asha_decision_never_revisited() -> None:
    # early runs reach rung 1 first; "early" passes as the best of 2
    hist: dict[str, list[float]] = {"first": [5.0], "early": [4.0]}
    d = evaluate(ASHA, "minimize", hist, {"first", "early"})
    assert [s.name for s in d.stops] == ["first"]
    assert d.promoted == {"early": 1}
    # many better runs arrive later; with its promotion remembered "early" is not judged again
    hist.update({f"late{i}": [float(i) / 10] for i in range(6)})
    later = evaluate(ASHA, "minimize", hist, {"early"}, promoted=d.promoted)
    assert later.stops == () and later.promoted == {"early": 1}
    # the stateless form has no memory: it judges rung 1 again and stops it
    assert decide(ASHA, "minimize", hist, {"early"}) == [Stop("early", "asha rung 1: 4 > 0.1, not in the best 2 of 8")]


def test_asha_promotions_accumulate_and_input_is_not_mutated() -> None:
    promoted = {"a": 1}
    hist = {"a": [1.0, 1.0, 1.0], "b": [2.0, 2.0, 2.0]}
    d = evaluate(ASHA, "minimize", hist, {"a"}, promoted=promoted)
    assert d.promoted == {"a": 2} and promoted == {"a": 1}


def test_asha_stop_runs_is_stateless() -> None:
    runs = _runs(("a", "finished", [1.0]), ("b", "finished", [2.0]), ("c", "running", [3.0]))
    assert stop_runs(_config(ASHA), runs) == ["c"]


def test_hyperband_evaluate_passes_promoted_through() -> None:
    d = evaluate(HB, "minimize", {"a": [1.0]}, {"a"}, promoted={"x": 2})
    assert d == Decision((), {"x": 2})


def test_stopping_is_pure() -> None:
    """The pruner's rules must run without a server or an optimizer installed."""
    source = (Path(__file__).parent.parent / "sweepq" / "stopping.py").read_text()
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"redis", "rq", "optuna", "numpy", "scipy"}


@pytest.mark.parametrize("seed", range(40))
def test_hyperband_tracker_matches_evaluate_as_histories_grow(seed: int) -> None:
    """The incremental tracker the pruner uses gives W&B's decisions at every step."""
    import random

    from sweepq.stopping import HyperbandTracker

    rng = random.Random(seed)
    goal = rng.choice(["minimize", "maximize"])
    et = (
        {
            "type": "hyperband",
            "min_iter": rng.choice([1, 2, 3]),
            "eta": rng.choice([2, 3]),
            "strict": rng.choice([True, False]),
        }
        if seed % 2
        else {"type": "hyperband", "max_iter": 27, "s": 3, "eta": 3, "strict": rng.choice([True, False])}
    )
    tracker = HyperbandTracker(et, goal)
    hist: dict[str, list[float]] = {str(i): [] for i in range(rng.randint(1, 12))}
    running = set(hist)
    for _ in range(150):
        name = rng.choice(sorted(hist))
        if rng.random() < 0.05:
            hist[name] = []  # a new attempt starts over
        hist[name].append(round(rng.uniform(0, 1), 2))  # rounding makes ties common
        tracker.update(name, hist[name])
        if rng.random() < 0.05:
            running.discard(name)
        want = decide(et, goal, hist, running)
        assert tracker.decide(sorted(running, key=list(hist).index)) == want


@pytest.mark.parametrize("seed", range(30))
def test_asha_rule_object_matches_evaluate_with_promotions_threaded(seed: int) -> None:
    """The incremental ASHA the pruner keeps decides what `evaluate` decides when the caller
    threads `promoted` through, including a new attempt starting its judgement afresh."""
    import random

    from sweepq.stopping import Asha, Rule, StoppingRule, evaluate

    rng = random.Random(seed)
    goal = rng.choice(["minimize", "maximize"])
    et = {"type": "asha", "min_iter": rng.choice([1, 2]), "eta": rng.choice([2, 3]), "max_iter": 30}
    rule: StoppingRule = Rule.from_config(et).build(goal)
    assert isinstance(rule, Asha)
    hist: dict[str, list[float]] = {str(i): [] for i in range(rng.randint(1, 10))}
    running = set(hist)
    promoted: dict[str, int] = {}
    for _ in range(120):
        name = rng.choice(sorted(hist))
        if rng.random() < 0.05:
            hist[name] = []  # a new attempt starts over
            promoted.pop(name, None)
        hist[name].append(round(rng.uniform(0, 1), 2))
        rule.update(name, hist[name])
        got = rule.decide(running)
        decision = evaluate(et, goal, hist, running, promoted=promoted)
        promoted = dict(decision.promoted)
        assert got == list(decision.stops)
        for stop in got:
            running.discard(stop.name)


def test_the_config_builds_the_rule_and_dispatch_happens_once() -> None:
    from sweepq.config import load
    from sweepq.stopping import Asha, Hyperband

    base = {"method": "random", "metric": {"name": "loss"}, "parameters": {"x": {"min": 0, "max": 1}}}
    hb = load({**base, "early_terminate": {"type": "hyperband", "min_iter": 3}}).stopping_rule()
    asha = load({**base, "early_terminate": {"type": "asha", "min_iter": 1, "max_iter": 9}}).stopping_rule()
    assert isinstance(hb, Hyperband) and hb.rule.bands[:3] == (3, 9, 27)
    assert isinstance(asha, Asha) and asha.rule.bands == (1, 3)
    assert load(base).stopping_rule() is None
