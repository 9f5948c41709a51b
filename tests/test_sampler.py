"""The Optuna adapter: u-space coordinates, ask/tell, reproducibility, rebuild, bayes vs random."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from sweepq import sampler as sampler_module
from sweepq.config import SweepConfig, parse
from sweepq.sampler import Sampler, Suggestion
from sweepq.space import REGISTRY, dotted

ROOT = Path(__file__).resolve().parent.parent

# One parameter per W&B distribution (deprecated forms included), a weighted categorical, a
# constant, and a nested group.
EVERY_KIND: dict[str, Any] = {
    "categorical": {"values": ["a", "b", [1, 2], None]},
    "weighted": {"values": [1, 2, 3], "probabilities": [0.2, 0.5, 0.3]},
    "constant": {"value": {"nested": True}},
    "int_uniform": {"min": -3, "max": 4},
    "uniform": {"min": -1.0, "max": 2.5},
    "q_uniform": {"distribution": "q_uniform", "min": 0, "max": 10, "q": 2},
    "log_uniform": {"distribution": "log_uniform", "min": -5, "max": 0},
    "log_uniform_values": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
    "q_log_uniform": {"distribution": "q_log_uniform", "min": 0, "max": 5, "q": 1},
    "q_log_uniform_values": {"distribution": "q_log_uniform_values", "min": 1, "max": 1000, "q": 5},
    "inv_log_uniform": {"distribution": "inv_log_uniform", "min": 0, "max": 3},
    "inv_log_uniform_values": {"distribution": "inv_log_uniform_values", "min": 1, "max": 20},
    "normal": {"distribution": "normal", "mu": 1.0, "sigma": 2.0},
    "q_normal": {"distribution": "q_normal", "mu": 10, "sigma": 3, "q": 1},
    "log_normal": {"distribution": "log_normal", "mu": 0.0, "sigma": 0.5},
    "q_log_normal": {"distribution": "q_log_normal", "mu": 2.0, "sigma": 0.5, "q": 1},
    "beta": {"distribution": "beta", "a": 2.0, "b": 5.0},
    "q_beta": {"distribution": "q_beta", "a": 2.0, "b": 2.0, "q": 0.1},
    "group": {"parameters": {"lr": {"min": 0.0, "max": 1.0}, "depth": {"values": [1, 2]}}},
}


def _config(method: str, parameters: dict[str, Any], goal: str = "minimize") -> SweepConfig:
    data: dict[str, Any] = {"method": method, "parameters": parameters}
    if method == "bayes":
        data["metric"] = {"name": "loss", "goal": goal}
    return parse(data)


QUAD = {"x": {"min": -2.0, "max": 2.0}, "y": {"min": -2.0, "max": 2.0}}


def _quadratic(params: dict[str, Any]) -> float:
    return float((params["x"] - 0.7) ** 2 + (params["y"] + 0.4) ** 2)


def _run(s: Sampler, n: int, *, start: int = 0) -> list[Suggestion]:
    out = []
    for number in range(start, start + n):
        sg = s.ask(number)
        s.tell(sg.encoded, "finished", _quadratic(sg.params), number=number)
        out.append(sg)
    return out


# -- coordinates ----------------------------------------------------------------------------


def test_every_registry_form_is_covered() -> None:
    config = _config("random", EVERY_KIND)
    names = {type(d).name for _, d in config.space.leaves}
    assert names == set(REGISTRY)


@pytest.mark.parametrize("method", ["random", "bayes"])
def test_encoded_coordinates_decode_to_params_for_every_kind(method: str) -> None:
    config = _config(method, EVERY_KIND)
    s = Sampler(config, seed=3, n_startup_trials=2)
    for number in range(6):
        sg = s.ask(number)
        again = json.loads(json.dumps(sg.encoded))  # as the store keeps it
        assert again == sg.encoded
        expected: dict[tuple[str, ...], Any] = {}
        for path, dist in config.space.leaves:
            name = dotted(path)
            if dist.encoding == "const":
                assert name not in sg.encoded
                expected[path] = dist.decode(None)
                continue
            x = sg.encoded[name]
            if dist.encoding == "u":
                assert isinstance(x, float) and 0.0 <= x <= 1.0
            elif dist.encoding == "index":
                assert isinstance(x, int) and 0 <= x < dist.n_choices
            else:
                assert isinstance(x, int) and dist.min <= x <= dist.max  # type: ignore[attr-defined]
            expected[path] = dist.decode(x)
        assert sg.params == config.space.nest(expected)
        assert sg.params["constant"] == {"nested": True}
        assert sg.params["group"]["depth"] in (1, 2)
        s.tell(again, "finished", float(number), number=number)


def test_optuna_distributions_follow_the_encoding() -> None:
    config = _config("bayes", EVERY_KIND)
    s = Sampler(config, seed=0)
    s.ask(0)
    dists = s.study.trials[0].distributions
    assert dists["categorical"] == optuna.distributions.CategoricalDistribution([0, 1, 2, 3])
    assert dists["int_uniform"] == optuna.distributions.IntDistribution(-3, 4)
    assert dists["normal"] == optuna.distributions.FloatDistribution(0.0, 1.0)
    assert dists["weighted"] == optuna.distributions.FloatDistribution(0.0, 1.0)
    # numeric values lists are ordered: Optuna sees the sorted positions as an int range
    assert dists["group.depth"] == optuna.distributions.IntDistribution(0, 1)
    assert "constant" not in dists


def test_random_draws_are_space_sample_with_the_trial_generator() -> None:
    """W&B's law: random search is u ~ U[0, 1) through each ppf, in leaf order."""
    config = _config("random", EVERY_KIND)
    s = Sampler(config, seed=11)
    for number in range(20):
        assert s.ask(number).params == config.space.sample(np.random.default_rng([11, number]))


def test_random_weighted_categorical_keeps_probabilities() -> None:
    config = _config("random", {"w": {"values": ["a", "b"], "probabilities": [0.9, 0.1]}})
    s = Sampler(config, seed=5)
    share = sum(s.ask(n).params["w"] == "a" for n in range(2000)) / 2000
    assert 0.87 < share < 0.93


# -- reproducibility and rebuild ------------------------------------------------------------


@pytest.mark.parametrize("method", ["random", "bayes"])
def test_same_seed_same_suggestions(method: str) -> None:
    config = _config(method, QUAD)
    a = _run(Sampler(config, seed=42, n_startup_trials=5), 15)
    b = _run(Sampler(config, seed=42, n_startup_trials=5), 15)
    c = _run(Sampler(config, seed=43, n_startup_trials=5), 15)
    assert [x.encoded for x in a] == [x.encoded for x in b]
    assert [x.encoded for x in a] != [x.encoded for x in c]


def _mixed_history(s: Sampler) -> list[dict[str, Any]]:
    """12 trials ending every way a trial can end, 3 still pending; the records a store keeps."""
    records: list[dict[str, Any]] = []
    for number in range(15):
        sg = s.ask(number)
        record: dict[str, Any] = {
            "number": number,
            "encoded": json.loads(json.dumps(sg.encoded)),
            "state": "running",
            "value": None,
            "intermediate": [],
        }
        kind = number % 5
        if number >= 12:
            pass  # pending
        elif kind == 1:
            record.update(state="failed")
        elif kind == 2:
            curve = [_quadratic(sg.params) + 1.0 / (i + 1) for i in range(4)]
            record.update(state="pruned", intermediate=[*curve[:2], math.nan, *curve[2:]])
        elif kind == 3:
            record.update(state="cancelled" if number < 5 else "crashed")
        else:
            record.update(state="finished", value=_quadratic(sg.params), intermediate=[1.0, _quadratic(sg.params)])
        if record["state"] != "running":
            s.tell(record["encoded"], record["state"], record["value"], record["intermediate"], number=number)
        records.append(record)
    return records


def _history(s: Sampler) -> list[tuple[Any, ...]]:
    return sorted(
        (tuple(sorted(t.params.items())), t.state, t.value, tuple(t.intermediate_values.items()))
        for t in s.study.trials
    )


@pytest.mark.parametrize("method", ["random", "bayes"])
def test_rebuild_continues_exactly_like_an_uninterrupted_sampler(method: str) -> None:
    config = _config(method, {**QUAD, "c": {"values": ["p", "q", "r"]}, "n": {"min": 1, "max": 9}})
    uninterrupted = Sampler(config, seed=7, n_startup_trials=4)
    records = _mixed_history(uninterrupted)
    rebuilt = Sampler(config, seed=7, n_startup_trials=4)
    rebuilt.rebuild(json.loads(json.dumps(records)))
    assert _history(rebuilt) == _history(uninterrupted)
    assert rebuilt.pending() == uninterrupted.pending() == [r["encoded"] for r in records[12:]]
    for s in (uninterrupted, rebuilt):  # the pending trials end; then both go on
        for r in records[12:]:
            s.tell_record({**r, "state": "finished", "value": 0.5})
    assert [x.encoded for x in _run(rebuilt, 6, start=15)] == [x.encoded for x in _run(uninterrupted, 6, start=15)]


def test_rebuild_skips_records_without_coordinates() -> None:
    s = Sampler(_config("bayes", QUAD), seed=1)
    s.rebuild([{"number": 0, "encoded": {}, "state": "finished", "value": 1.0}])
    assert s.study.trials == []


# -- tell --------------------------------------------------------------------------------------


def test_tell_states_map_to_optuna() -> None:
    s = Sampler(_config("bayes", QUAD), seed=0)
    outcomes = [
        ("finished", 0.25, [1.0, 0.25]),
        ("failed", 3.0, [1.0]),
        ("pruned", None, [2.0, math.inf, 1.5, "x"]),
        ("finished", None, [1.0]),
        ("finished", math.nan, []),
        ("cancelled", None, []),
        ("pruned", 4.0, []),
        ("crashed", None, [1.0]),
        ("killed", 2.0, []),
    ]
    for number, (state, value, inter) in enumerate(outcomes):
        s.tell(s.ask(number).encoded, state, value, inter, number=number)
    got = [(t.state, t.value, t.intermediate_values) for t in s.study.trials]
    assert got == [
        (TrialState.COMPLETE, 0.25, {0: 1.0, 1: 0.25}),
        (TrialState.COMPLETE, 0.25, {0: 1.0}),  # failed: the worst value so far (W&B's impute)
        (TrialState.PRUNED, 1.5, {0: 2.0, 1: 1.5}),  # last finite intermediate value
        (TrialState.FAIL, None, {0: 1.0}),  # finished without a value
        (TrialState.FAIL, None, {}),
        (TrialState.FAIL, None, {}),
        (TrialState.PRUNED, 4.0, {0: 4.0}),  # no curve: the value stands in
        (TrialState.FAIL, None, {0: 1.0}),
        (TrialState.FAIL, None, {}),
    ]
    assert s.pending() == []


def test_failed_trials_count_as_the_worst_value_by_goal() -> None:
    for goal, values, worst in (("minimize", [0.5, 2.0, 1.0], 2.0), ("maximize", [0.5, 2.0, 1.0], 0.5)):
        s = Sampler(_config("bayes", QUAD, goal), seed=0)
        s.tell(s.ask(0).encoded, "failed", None, number=0)  # nothing told yet: Optuna's FAIL
        for n, v in enumerate(values, start=1):
            s.tell(s.ask(n).encoded, "finished", v, number=n)
        s.tell(s.ask(9).encoded, "failed", None, number=9)
        assert s.study.trials[0].state == TrialState.FAIL
        assert (s.study.trials[-1].state, s.study.trials[-1].value) == (TrialState.COMPLETE, worst)


def test_tell_without_number_takes_oldest_pending_with_those_coordinates() -> None:
    s = Sampler(_config("bayes", {"c": {"values": [1, 2]}}), seed=0)
    s.add_pending({"c": 0})
    s.add_pending({"c": 0})
    s.add_pending({"c": 1})
    s.tell({"c": 0}, "finished", 1.0)
    assert [t.state for t in s.study.trials] == [TrialState.COMPLETE, TrialState.RUNNING, TrialState.RUNNING]
    assert s.pending() == [{"c": 0}, {"c": 1}]


def test_tell_of_unknown_trial_adds_it() -> None:
    s = Sampler(_config("bayes", QUAD), seed=0)
    s.tell({"x": 0.5, "y": 0.25}, "finished", 2.0, number=9)
    [t] = s.study.trials
    assert (t.params, t.state, t.value) == ({"x": 0.5, "y": 0.25}, TrialState.COMPLETE, 2.0)


def test_forget_fails_the_pending_trial() -> None:
    s = Sampler(_config("bayes", QUAD), seed=0)
    s.ask(0)
    s.ask(1)
    s.forget(0)
    s.forget(5)  # unknown: nothing to do
    assert [t.state for t in s.study.trials] == [TrialState.FAIL, TrialState.RUNNING]
    assert len(s.pending()) == 1


def test_asking_a_number_again_replaces_the_old_pending_trial() -> None:
    s = Sampler(_config("random", QUAD), seed=0)
    first = s.ask(0)
    assert s.ask(0) == first  # same number, same seed: the same point
    assert len(s.pending()) == 1


@pytest.mark.parametrize(
    "encoded",
    [
        {"x": 0.5},
        {"x": 0.5, "y": 0.5, "z": 0.1},
        {"x": 1.5, "y": 0.5},
        {"x": "0.5", "y": 0.5},
        {"x": math.nan, "y": 0.5},
        {"x": True, "y": 0.5},
    ],
)
def test_bad_coordinates_are_rejected(encoded: dict[str, Any]) -> None:
    s = Sampler(_config("bayes", QUAD), seed=0)
    with pytest.raises(ValueError):
        s.tell(encoded, "finished", 1.0)


def test_bad_index_and_int_coordinates_are_rejected() -> None:
    s = Sampler(_config("bayes", {"c": {"values": [1, 2]}, "n": {"min": 1, "max": 3}}), seed=0)
    for encoded in ({"c": 2, "n": 1}, {"c": 0, "n": 4}, {"c": 0.5, "n": 1}):
        with pytest.raises(ValueError):
            s.add_pending(encoded)
    s.add_pending({"c": 1.0, "n": 3})  # integral floats (from JSON) are accepted
    assert s.pending() == [{"c": 1, "n": 3}]


def test_unknown_state_is_rejected() -> None:
    s = Sampler(_config("bayes", QUAD), seed=0)
    with pytest.raises(ValueError, match="state"):
        s.tell(s.ask(0).encoded, "running", 1.0)


# -- algorithms ------------------------------------------------------------------------------


def test_grid_is_not_the_samplers_job() -> None:
    s = Sampler(_config("grid", {"c": {"values": [1, 2]}}), seed=0)
    with pytest.raises(ValueError, match="grid"):
        s.ask()


def test_unknown_algorithm_is_rejected() -> None:
    with pytest.raises(ValueError, match="algorithm"):
        Sampler(_config("bayes", QUAD), seed=0, algorithm="cmaes")


def test_gp_without_torch_uses_scikit_learns_gp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sampler_module, "_torch_available", lambda: False)
    assert Sampler(_config("bayes", QUAD), seed=0, algorithm="gp").algorithm == "sklearn-gp"
    assert Sampler(_config("bayes", QUAD), seed=0, algorithm="auto").algorithm == "sklearn-gp"
    assert Sampler(_config("random", QUAD), seed=0, algorithm="gp").algorithm == "random"


def test_gp_is_chosen_when_torch_is_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sampler_module, "_torch_available", lambda: True)
    assert Sampler(_config("bayes", QUAD), seed=0, algorithm="gp").algorithm == "gp"
    assert Sampler(_config("bayes", QUAD), seed=0, algorithm="auto").algorithm == "gp"


def test_gp_algorithm_builds_optunas_gp_sampler(monkeypatch: pytest.MonkeyPatch) -> None:
    """Torch is optional, so the GP plumbing is checked with a stand-in that records its use."""
    made: list[dict[str, Any]] = []

    def fake_gp(**kwargs: Any) -> optuna.samplers.BaseSampler:
        made.append(kwargs)
        return optuna.samplers.RandomSampler(seed=kwargs["seed"])

    monkeypatch.setattr(sampler_module, "_torch_available", lambda: True)
    monkeypatch.setattr(optuna.samplers, "GPSampler", fake_gp)
    s = Sampler(_config("bayes", QUAD), seed=4, algorithm="gp", n_startup_trials=3)
    _run(s, 2)
    assert [sorted(k) for k in made] == [["n_startup_trials", "seed"]] * 2
    assert made[0]["seed"] != made[1]["seed"]  # reseeded per trial number


@pytest.mark.skipif(not sampler_module._torch_available(), reason="GPSampler needs torch")
def test_gp_suggestions_are_reproducible() -> None:
    config = _config("bayes", QUAD)
    a = _run(Sampler(config, seed=1, algorithm="gp", n_startup_trials=3), 6)
    b = _run(Sampler(config, seed=1, algorithm="gp", n_startup_trials=3), 6)
    assert [x.encoded for x in a] == [x.encoded for x in b]


def test_maximize_sets_the_study_direction() -> None:
    s = Sampler(_config("bayes", QUAD, goal="maximize"), seed=0)
    assert s.study.direction == optuna.study.StudyDirection.MAXIMIZE


def test_bayes_beats_random_on_a_quadratic() -> None:
    bests: dict[str, list[float]] = {"bayes": [], "random": []}
    for method in bests:
        config = _config(method, QUAD)
        for seed in range(5):
            trials = _run(Sampler(config, seed=seed), 40)
            bests[method].append(min(_quadratic(t.params) for t in trials))
    assert statistics.median(bests["bayes"]) < statistics.median(bests["random"]) / 3


def test_import_sweepq_does_not_import_optuna() -> None:
    code = "import sys, sweepq; sys.exit('optuna' in sys.modules or 'sweepq.sampler' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
