"""bayes's default model without torch: scikit-learn's GP, ordered numeric values, pending trials."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import numpy as np
import optuna
import pytest
from threadpoolctl import threadpool_limits

from sweepq import gp as gp_module
from sweepq import sampler as sampler_module
from sweepq.config import SweepConfig, parse
from sweepq.gp import SklearnGPSampler
from sweepq.sampler import Sampler

BRANIN = {"x1": {"min": -5.0, "max": 10.0}, "x2": {"min": 0.0, "max": 15.0}}
BRANIN_MIN = 0.397887357729739


def branin(p: dict[str, Any]) -> float:
    x1, x2 = p["x1"], p["x2"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return float((x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10)


def _config(parameters: dict[str, Any], method: str = "bayes") -> SweepConfig:
    return parse({"method": method, "metric": {"name": "loss", "goal": "minimize"}, "parameters": parameters})


@pytest.fixture
def no_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default install: torch is not importable, so bayes's GP is scikit-learn's."""
    monkeypatch.setattr(sampler_module, "_torch_available", lambda: False)


def _finish(s: Sampler, number: int, encoded: dict[str, Any], value: float) -> None:
    s.tell_record({"number": number, "encoded": encoded, "state": "finished", "value": value})


@pytest.mark.usefixtures("no_torch")
def test_auto_and_gp_use_scikit_learns_gp_without_torch() -> None:
    assert Sampler(_config(BRANIN), seed=0, algorithm="auto").algorithm == "sklearn-gp"
    assert Sampler(_config(BRANIN), seed=0, algorithm="gp").algorithm == "sklearn-gp"
    assert Sampler(_config(BRANIN), seed=0, algorithm="tpe").algorithm == "tpe"


@pytest.mark.usefixtures("no_torch")
def test_gp_finds_branins_basin() -> None:
    """30 trials reach within 0.05 of Branin's minimum; 9 random searches of 30 all stay above."""
    s = Sampler(_config(BRANIN), seed=3, algorithm="auto")
    best = math.inf
    for n in range(30):
        sg = s.ask(n)
        y = branin(sg.params)
        best = min(best, y)
        _finish(s, n, sg.encoded, y)
    assert best - BRANIN_MIN < 0.05
    rng = np.random.default_rng(3)
    randoms = [
        min(branin({"x1": -5 + 15 * a, "x2": 15 * b}) for a, b in rng.random((30, 2))) - BRANIN_MIN for _ in range(9)
    ]
    assert best - BRANIN_MIN < min(randoms)


def test_numeric_values_are_ordered_positions_for_optuna() -> None:
    config = _config(
        {
            "batch": {"values": [64, 16, 256, 32]},  # written unsorted
            "name": {"values": ["a", "b"]},
            "flag": {"values": [True, False]},  # booleans are not numbers here
        }
    )
    s = Sampler(config, seed=0)
    s.add_pending({"batch": 1, "name": 0, "flag": 0}, number=0)  # index 1 is 16: the smallest
    [trial] = s.study.trials
    assert trial.distributions["batch"] == optuna.distributions.IntDistribution(0, 3)
    assert trial.distributions["name"] == optuna.distributions.CategoricalDistribution([0, 1])
    assert trial.distributions["flag"] == optuna.distributions.CategoricalDistribution([0, 1])
    assert trial.params["batch"] == 0  # position of 16 in [16, 32, 64, 256]
    for index, position in ((0, 2), (2, 3), (3, 1)):
        s.add_pending({"batch": index, "name": 0, "flag": 0}, number=index + 10)
        assert s.study.trials[-1].params["batch"] == position
    for n in range(20):  # asks come back as indices into the list as written
        sg = s.ask(100 + n)
        assert sg.params["batch"] == config.space.leaves[0][1].values[sg.encoded["batch"]]


@pytest.mark.usefixtures("no_torch")
def test_ordered_values_let_the_gp_interpolate() -> None:
    """A 30-value list, best at its 19th value: the GP knows neighbours and gets there fast."""
    values = [round(0.01 * 1.25**i, 6) for i in range(30)]
    target = values[18]

    def f(p: dict[str, Any]) -> float:
        return (math.log(p["v"]) - math.log(target)) ** 2 + (p["x"] - 0.3) ** 2

    s = Sampler(_config({"v": {"values": values[::-1]}, "x": {"min": 0.0, "max": 1.0}}), seed=1, algorithm="auto")
    found = []
    for n in range(22):
        sg = s.ask(n)
        found.append(sg.params["v"])
        _finish(s, n, sg.encoded, f(sg.params))
    assert target in found[10:]  # within 12 model-guided trials


@pytest.mark.usefixtures("no_torch")
@pytest.mark.parametrize("strategy", ["believer", "fantasies"])
def test_pending_trials_are_not_proposed_again(strategy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With trials running, the fantasies' variance collapse sends new asks elsewhere."""
    monkeypatch.setattr(sampler_module, "_GP_PENDING", strategy)
    s = Sampler(_config(BRANIN), seed=5, algorithm="auto")
    for n in range(12):
        sg = s.ask(n)
        _finish(s, n, sg.encoded, branin(sg.params))
    batch = [s.ask(12 + k).encoded for k in range(4)]  # four asks, none told
    points = np.array([[e["x1"], e["x2"]] for e in batch])
    gaps = [np.linalg.norm(points[i] - points[j]) for i in range(4) for j in range(i)]
    assert min(gaps) > 0.01
    assert len(s.pending()) == 4


@pytest.mark.usefixtures("no_torch")
@pytest.mark.parametrize("strategy", ["believer", "fantasies", "bucb"])
def test_finite_space_never_repeats_a_point(strategy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """All-discrete spaces: the GP never proposes a point already run or running (the random
    start-up may)."""
    monkeypatch.setattr(sampler_module, "_GP_PENDING", strategy)
    config = _config({"a": {"values": [1, 2, 3]}, "b": {"values": [10, 20]}, "c": {"values": ["x", "y"]}})
    s = Sampler(config, seed=2, algorithm="auto", n_startup_trials=3)
    seen = []
    for n in range(12):
        sg = s.ask(n)
        seen.append(tuple(sorted(sg.encoded.items())))
        if n % 2 == 0:  # half stay pending
            _finish(s, n, sg.encoded, float(sg.params["a"] + sg.params["b"]))
    assert all(seen[n] not in seen[:n] for n in range(5, 12))  # 3 finished from trial 5 on


@pytest.mark.usefixtures("no_torch")
def test_gp_rebuild_continues_exactly() -> None:
    config = _config({**BRANIN, "k": {"values": [1, 2, 4, 8]}, "c": {"values": ["p", "q"]}})
    live = Sampler(config, seed=9, algorithm="auto", n_startup_trials=4)
    records = []
    for n in range(10):
        sg = live.ask(n)
        rec: dict[str, Any] = {"number": n, "encoded": json.loads(json.dumps(sg.encoded)), "state": "running"}
        if n < 8:
            rec.update(state="finished", value=branin(sg.params) * sg.params["k"])
            live.tell_record(rec)
        records.append(rec)
    rebuilt = Sampler(config, seed=9, algorithm="auto", n_startup_trials=4)
    rebuilt.rebuild(records)
    assert [rebuilt.ask(10 + k).encoded for k in range(3)] == [live.ask(10 + k).encoded for k in range(3)]


@pytest.mark.usefixtures("no_torch")
def test_ask_cost_stays_bounded() -> None:
    """The GP's ask at 150 trials stays well under a second of CPU; from 300 on, auto is TPE."""
    config = _config({f"x{i}": {"min": 0.0, "max": 1.0} for i in range(6)})
    rng = np.random.default_rng(0)

    def records(n: int) -> list[dict[str, Any]]:
        out = []
        for number, u in enumerate(rng.random((n, 6))):
            enc = {f"x{i}": float(v) for i, v in enumerate(u)}
            out.append({"number": number, "encoded": enc, "state": "finished", "value": float(np.sum((u - 0.3) ** 2))})
        return out

    for n, limit in ((150, 2.0), (300, 0.5)):
        s = Sampler(config, seed=0, algorithm="auto")
        s.rebuild(records(n))
        with threadpool_limits(1):  # one BLAS thread: others' spinning would not be this thread's time
            t = time.thread_time()
            s.ask(n)
            assert time.thread_time() - t < limit, n


def test_sampler_rejects_unsupported_distributions() -> None:
    with pytest.raises(ValueError, match="plain float ranges"):
        SklearnGPSampler({"x": optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)})


def test_maximize_is_minimizing_the_negation() -> None:
    """The same history told as maximize of -f or minimize of f gives the same proposal."""
    space = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
    proposals = []
    for direction, sign in (("minimize", 1.0), ("maximize", -1.0)):
        study = optuna.create_study(direction=direction, sampler=SklearnGPSampler(space, seed=4, n_startup_trials=5))
        for x in (0.05, 0.2, 0.45, 0.7, 0.95, 0.6):
            study.add_trial(
                optuna.trial.create_trial(params={"x": x}, distributions=space, value=sign * (x - 0.62) ** 2)
            )
        proposals.append(study.ask(space).params["x"])
    assert proposals[0] == pytest.approx(proposals[1])
    assert abs(proposals[0] - 0.62) < 0.1


def test_start_up_counts_finished_trials_at_least_two() -> None:
    """Random start-up lasts until ``n_startup_trials`` trials (at least 2, W&B's own rule) have
    finished; running ones do not count (measured: counting them lost with 4 pending)."""
    space = {
        "x": optuna.distributions.FloatDistribution(0.0, 1.0),
        "y": optuna.distributions.FloatDistribution(0.0, 1.0),
    }

    def modelled(n_startup: int, finished: int, running: int) -> bool:
        gp = SklearnGPSampler(space, seed=0, n_startup_trials=n_startup)
        study = optuna.create_study(sampler=gp)
        for i in range(finished + running):
            t = study.ask(space)
            if i < finished:
                study.tell(t, (t.params["x"] - 0.3) ** 2 + t.params["y"])
        trial = study.ask()
        return bool(gp.sample_relative(study, study._storage.get_trial(trial._trial_id), space))

    assert not modelled(1, finished=1, running=2)  # never from one finished trial
    assert modelled(1, finished=2, running=0)
    assert not modelled(3, finished=2, running=4)
    assert modelled(3, finished=3, running=0)
    assert sampler_module._gp_startup(2) == 3 and sampler_module._gp_startup(1) == 2
    assert sampler_module._gp_startup(7) == 8 and sampler_module._gp_startup(20) == 10


def test_warp_tames_a_long_upper_tail_and_keeps_the_order() -> None:
    """Sums of squares (Rosenbrock) have a few huge values: after the Yeo-Johnson warp they sit
    closer to the rest, the best values are spread wider, and the order is the same."""
    rng = np.random.default_rng(0)
    y = np.exp(rng.normal(0.0, 1.5, 40))  # lognormal: a long upper tail
    w = gp_module._warp(y)
    z = (y - y.mean()) / y.std()
    assert list(np.argsort(w)) == list(np.argsort(y))
    assert w.mean() == pytest.approx(0.0, abs=1e-9) and w.std() == pytest.approx(1.0)
    assert w.max() < z.max()
    low = np.argsort(y)[:10]
    assert np.ptp(w[low]) > 2 * np.ptp(z[low])


def test_warp_only_standardizes_values_skewed_towards_the_minimum() -> None:
    """Hartmann6-like values (mostly near 0, a few deep minima): a fitted exponent above 1 would
    squeeze the deep ones together, so they are only standardized."""
    rng = np.random.default_rng(1)
    y = -np.exp(rng.normal(0.0, 1.5, 40))
    assert np.allclose(gp_module._warp(y), (y - y.mean()) / y.std())
    assert np.allclose(gp_module._warp(np.array([1.0, 1.0, 1.0])), 0.0)  # flat: no warp, no NaN


def test_finite_space_grid_is_every_point_once() -> None:
    space = {
        "a": optuna.distributions.IntDistribution(0, 3),
        "b": optuna.distributions.CategoricalDistribution(["x", "y", "z"]),
        "c": optuna.distributions.IntDistribution(2, 4),
    }
    gp = SklearnGPSampler(space, seed=0)
    grid = gp._grid()
    assert grid is not None and grid.shape == (4 * 3 * 3, gp._width)
    combos = [{"a": a, "b": b, "c": c} for a in range(4) for b in ("x", "y", "z") for c in (2, 3, 4)]
    assert sorted(map(tuple, grid)) == sorted(map(tuple, gp._encode(combos)))
    assert [gp._decode(row) for row in gp._encode(combos)] == combos
    wide = {f"v{i}": optuna.distributions.IntDistribution(0, 9) for i in range(5)}  # 100,000 points
    assert SklearnGPSampler(wide, seed=0)._grid() is None
    mixed = {**space, "f": optuna.distributions.FloatDistribution(0.0, 1.0)}
    assert SklearnGPSampler(mixed, seed=0)._grid() is None


@pytest.mark.usefixtures("no_torch")
def test_finite_space_finds_the_grid_optimum() -> None:
    """A 20 x 20 x 3 values grid with one best point: scoring every point finds it within 25
    trials, and never proposes a point twice."""
    values = [round(0.001 * 1.5**i, 6) for i in range(20)]
    best = (values[13], values[4], "b")

    def f(p: dict[str, Any]) -> float:
        return (
            (math.log(p["lr"]) - math.log(best[0])) ** 2
            + 0.5 * (math.log(p["wd"]) - math.log(best[1])) ** 2
            + (0.0 if p["opt"] == "b" else 0.3)
        )

    s = Sampler(
        _config({"lr": {"values": values}, "wd": {"values": values[::-1]}, "opt": {"values": ["a", "b", "c"]}}),
        seed=0,
        algorithm="auto",
    )
    seen = []
    for n in range(25):
        sg = s.ask(n)
        seen.append((sg.params["lr"], sg.params["wd"], sg.params["opt"]))
        _finish(s, n, sg.encoded, f(sg.params))
    assert best in seen
    assert len(set(seen[4:])) == len(seen[4:])


@pytest.mark.usefixtures("no_torch")
def test_grid_scoring_ask_cost_stays_bounded() -> None:
    """A 14,580-point values grid (seven_values' shape) is scored whole: at 150 finished trials
    one ask stays under 2 s of CPU."""
    sizes = (9, 5, 4, 3, 3, 3, 3)
    config = _config({f"p{i}": {"values": list(range(1, n + 1))} for i, n in enumerate(sizes)})
    rng = np.random.default_rng(0)
    records = []
    for number in range(150):
        enc = {f"p{i}": int(rng.integers(n)) for i, n in enumerate(sizes)}
        value = float(sum((v - 1.5) ** 2 for v in enc.values()))
        records.append({"number": number, "encoded": enc, "state": "finished", "value": value})
    s = Sampler(config, seed=0, algorithm="auto")
    s.rebuild(records)
    assert s.algorithm == "sklearn-gp"
    with threadpool_limits(1):  # one BLAS thread, as the benchmark measures: no spin-waiting
        t = time.thread_time()
        s.ask(150)
        assert time.thread_time() - t < 2.0


@pytest.mark.usefixtures("no_torch")
def test_exhausted_grid_still_proposes_a_point_of_the_space() -> None:
    """More trials than a 4-point grid has points: every point is run, then asks repeat one."""
    s = Sampler(_config({"a": {"values": [1, 2]}, "b": {"values": ["x", "y"]}}), seed=0, algorithm="auto")
    seen = []
    for n in range(7):
        sg = s.ask(n)
        seen.append((sg.params["a"], sg.params["b"]))
        _finish(s, n, sg.encoded, float(sg.params["a"]))
    assert set(seen) == {(1, "x"), (1, "y"), (2, "x"), (2, "y")}


def test_fantasies_are_joint_posterior_draws_each_with_its_own_bar() -> None:
    """pending="fantasies": the running points get N_FANTASIES outcomes drawn jointly from the
    GP's posterior; the GP is conditioned on each (one output column per draw, kernel kept) and
    each draw's best value, or the best finished one, is that fantasy's EI bar."""
    space = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
    gp = SklearnGPSampler(space, seed=0, pending="fantasies")
    x = np.linspace(0.0, 0.5, 8)[:, None]
    y = np.sin(6.0 * x[:, 0])
    model = gp._fit(x, y)
    pend = np.array([[0.8], [0.81], [0.95]])  # away from the data: wide posterior there
    fitted, bar = gp._fantasize(model, x, y, pend)
    draws = np.asarray(fitted.y_train_)[len(x) :]
    assert draws.shape == (3, gp_module.N_FANTASIES)
    assert np.allclose(np.asarray(fitted.y_train_)[: len(x)], y[:, None])  # finished values in every column
    assert repr(fitted.kernel_) == repr(model.kernel_)  # conditioned, not refitted
    assert np.array_equal(bar, np.minimum(y.min(), draws.min(axis=0)))
    assert (bar < y.min()).any()  # some fantasies beat the best finished value
    # joint draws: two running points 0.01 apart get nearly the same fantasy (independent
    # draws would be uncorrelated), and the draws spread as the posterior does
    assert np.corrcoef(draws[0], draws[1])[0, 1] > 0.95
    mu, sd = model.predict(pend, return_std=True)
    assert np.all(np.abs(draws.mean(axis=1) - mu) < 4 * sd / math.sqrt(gp_module.N_FANTASIES))
    assert np.all((draws.std(axis=1) > 0.5 * sd) & (draws.std(axis=1) < 1.5 * sd))
    # each column passes through its own draw, and the uncertainty there is gone
    m, s = fitted.predict(pend, return_std=True)
    assert np.allclose(m, draws, atol=0.05 * float(sd.min()))
    assert np.all(np.asarray(s)[:, 0] < 0.1 * sd)


def test_local_penalization_scores_near_a_running_point_down() -> None:
    """pending="penalize" (Gonzalez et al.): a candidate on a running point is all but ruled
    out, one far from it is left alone."""
    space = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
    gp = SklearnGPSampler(space, seed=0, pending="penalize")
    x = np.linspace(0.0, 1.0, 9)[:, None]
    y = (x[:, 0] - 0.4) ** 2
    model = gp._fit(x, y)
    pend = np.array([[0.55]])
    log_penalty = gp._penalizer(model, x, y, pend)
    near, far = log_penalty(np.array([[0.55], [0.05]]))
    assert near < math.log(0.6) and far > math.log(0.99)


@pytest.mark.parametrize("strategy", ["fantasies", "penalize", "thompson", "bucb", "bucb-hybrid"])
def test_pending_rules_spread_a_batch_and_depend_only_on_the_history(strategy: str) -> None:
    """Fantasies, local penalization, Thompson draws and GP-BUCB: four asks with none told are
    four different points, and the same seed and history propose the same batch."""
    space = {
        "x1": optuna.distributions.FloatDistribution(-5.0, 10.0),
        "x2": optuna.distributions.FloatDistribution(0.0, 15.0),
    }

    def study_with_history() -> optuna.Study:
        sampler = SklearnGPSampler(space, seed=7, n_startup_trials=5, pending=strategy)  # type: ignore[arg-type]
        study = optuna.create_study(sampler=sampler)
        for _ in range(12):
            t = study.ask(space)
            study.tell(t, branin(t.params))
        return study

    study = study_with_history()
    batch = [study.ask(space).params for _ in range(4)]
    points = np.array([[p["x1"] / 15.0, p["x2"] / 15.0] for p in batch])
    assert min(np.linalg.norm(points[i] - points[j]) for i in range(4) for j in range(i)) > 0.01
    again = study_with_history()
    assert [again.ask(space).params for _ in range(4)] == batch


def test_bucb_moves_away_from_running_points_by_the_believers_variance() -> None:
    """pending="bucb" (GP-BUCB): with trials running around EI's choice on a sparsely sampled
    space, the believer's variance collapses there and the confidence bound proposes elsewhere;
    its mean is the finished trials' own, so the bound alone (not a lowered bar) moves it. (On a
    densely sampled smooth function the bound, like the believer, may stay put: it is then
    exploiting a known minimum.)"""
    space = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
    x = np.array([[0.05], [0.3], [0.55], [0.8]])
    y = np.sin(6.0 * x[:, 0])
    gp = SklearnGPSampler(space, seed=0, pending="bucb")
    alone = float(gp._propose(x, y, np.empty((0, 1)))[0])  # nothing running: log EI
    pend = np.array([[alone - 0.03], [alone], [alone + 0.03]])
    assert gp._uses_ucb(len(pend), number=9)
    moved = float(gp._propose(x, y, pend, number=9)[0])
    assert np.min(np.abs(pend[:, 0] - moved)) > 0.05
    # the believer's model: same mean as the finished trials', variance collapsed where running
    model = gp._fit(x, y)
    believer, _, _ = gp._condition(model, x, y, pend)
    _, sd_before = model.predict(pend, return_std=True)
    mu_after, sd_after = believer.predict(pend, return_std=True)
    assert np.all(np.asarray(sd_after) < 0.5 * np.asarray(sd_before))
    assert np.allclose(mu_after, model.predict(pend), atol=1e-3)


def test_bucb_with_one_trial_running_is_the_believer() -> None:
    """The bound scores only with ``BUCB_MIN_RUNNING`` (2) or more trials running: with one,
    "bucb" proposes exactly the believer's point (the 1-pending behaviour is the default's), and
    "bucb-hybrid" keeps EI on one ask in every running + 1."""
    space = {
        "x1": optuna.distributions.FloatDistribution(-5.0, 10.0),
        "x2": optuna.distributions.FloatDistribution(0.0, 15.0),
    }

    def next_with_one_running(strategy: str) -> dict[str, Any]:
        sampler = SklearnGPSampler(space, seed=4, n_startup_trials=5, pending=strategy)  # type: ignore[arg-type]
        study = optuna.create_study(sampler=sampler)
        for _ in range(12):
            t = study.ask(space)
            study.tell(t, branin(t.params))
        study.ask(space)  # one running
        return study.ask(space).params

    assert next_with_one_running("bucb") == next_with_one_running("believer")
    hybrid = SklearnGPSampler(space, pending="bucb-hybrid")
    assert [hybrid._uses_ucb(4, n) for n in range(10, 16)] == [False, True, True, True, True, False]
    assert not hybrid._uses_ucb(1, 11) and not SklearnGPSampler(space)._uses_ucb(4, 11)
    assert hybrid._beta(30) == 2.0  # fixed by default; None: Kandasamy et al.'s 0.2 d log 2t
    assert SklearnGPSampler(space, ucb_beta=None)._beta(30) == pytest.approx(0.2 * 2 * math.log(60.0))


def test_thompson_on_a_finite_space_never_repeats_a_point() -> None:
    space = {
        "a": optuna.distributions.IntDistribution(0, 4),
        "b": optuna.distributions.CategoricalDistribution(["x", "y", "z"]),
    }
    study = optuna.create_study(sampler=SklearnGPSampler(space, seed=3, n_startup_trials=4, pending="thompson"))
    seen = []
    for n in range(14):
        t = study.ask(space)
        seen.append((t.params["a"], t.params["b"]))
        if n % 2 == 0:
            study.tell(t, float((t.params["a"] - 2) ** 2 + (t.params["b"] == "y")))
    assert all(seen[n] not in seen[:n] for n in range(8, 14))


def test_sobol_start_up_is_the_sweeps_sequence_point_by_trial_number() -> None:
    """startup="sobol": start-up trial n is point n of a scrambled Sobol sequence seeded by the
    sweep, so eight trials fill each axis's eighths once, in any ask order."""
    space = {
        "x": optuna.distributions.FloatDistribution(0.0, 8.0),
        "k": optuna.distributions.IntDistribution(0, 3),
        "c": optuna.distributions.CategoricalDistribution(["p", "q"]),
    }

    def design(n: int, seed: int = 11) -> dict[str, Any]:
        return SklearnGPSampler(space, startup="sobol", design_seed=seed, design_index=n)._design()

    points = [design(n) for n in range(8)]
    assert sorted(int(p["x"]) for p in points) == list(range(8))
    assert sorted(p["k"] for p in points) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert sorted(p["c"] for p in points) == ["p"] * 4 + ["q"] * 4
    assert design(5) == points[5] and design(5, seed=12) != points[5]
    assert SklearnGPSampler(space, startup="sobol")._design() == {}  # no sweep seed: random start-up
