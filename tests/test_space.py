"""Distributions against W&B's engine (golden rows) and against their reference laws (KS / chi²)."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from sweepq.config import parse
from sweepq.errors import ConfigError
from sweepq.space import REGISTRY, Categorical, Constant, IntUniform, Space, Uniform, build

GOLDEN = json.loads((Path(__file__).parent / "golden" / "space.json").read_text())
N = 3000
P_MIN = 1e-3


def _same(ours: Any, theirs: Any) -> bool:
    """Equal value and equal JSON type (an int stays an int, a float a float)."""
    if isinstance(theirs, float) and isinstance(ours, float):
        return math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-300)
    return type(ours) is type(theirs) and ours == theirs


@pytest.mark.parametrize("row", GOLDEN["ppf"], ids=lambda r: json.dumps(r["spec"]))
def test_ppf_matches_wandb_engine(row: dict[str, Any]) -> None:
    dist = build(row["spec"])
    for u, expected in zip(row["u"], row["values"], strict=True):
        got = dist.ppf(u)
        assert _same(got, expected), (u, got, expected)


@pytest.mark.parametrize("row", GOLDEN["grid"], ids=lambda r: ",".join(r["config"]["parameters"]))
def test_grid_matches_wandb_engine(row: dict[str, Any]) -> None:
    space = _space(row["config"]["parameters"])
    points = space.grid()
    assert len(points) == space.grid_size() == len(row["points"])
    for ours, theirs in zip(points, row["points"], strict=True):
        assert ours == theirs
        assert json.dumps(ours) == json.dumps(theirs)  # same types: 1.0 stays 1.0


def _space(parameters: dict[str, Any]) -> Space:
    return parse({"method": "random", "parameters": parameters}).space


def _draws(spec: dict[str, Any], seed: int = 7) -> list[Any]:
    dist = build(spec)
    rng = np.random.default_rng(seed)
    return [dist.ppf(float(u)) for u in rng.random(N)]


CONTINUOUS = [
    ({"distribution": "uniform", "min": -2, "max": 5}, stats.uniform(-2, 7)),
    ({"min": 0.5, "max": 1.5}, stats.uniform(0.5, 1.0)),
    ({"distribution": "log_uniform", "min": -9, "max": -2}, stats.loguniform(math.exp(-9), math.exp(-2))),
    ({"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1}, stats.loguniform(1e-5, 1e-1)),
    # W&B's inv_log_uniform is 1/X with X log-uniform on [e^min, e^max].
    ({"distribution": "inv_log_uniform", "min": 1, "max": 4}, stats.loguniform(math.exp(-4), math.exp(-1))),
    ({"distribution": "inv_log_uniform_values", "min": 0.01, "max": 100}, stats.loguniform(0.01, 100)),
    ({"distribution": "normal"}, stats.norm(0, 1)),
    ({"distribution": "normal", "mu": -3, "sigma": 0.25}, stats.norm(-3, 0.25)),
    ({"distribution": "log_normal", "mu": 1, "sigma": 0.7}, stats.lognorm(s=0.7, scale=math.e)),
    ({"distribution": "beta"}, stats.beta(1, 1)),
    ({"distribution": "beta", "a": 0.5, "b": 3}, stats.beta(0.5, 3)),
]


@pytest.mark.parametrize(("spec", "law"), CONTINUOUS, ids=lambda x: json.dumps(x) if isinstance(x, dict) else "")
def test_continuous_law_ks(spec: dict[str, Any], law: Any) -> None:
    draws = _draws(spec)
    assert all(isinstance(x, float) for x in draws)
    assert stats.kstest(draws, law.cdf).pvalue > P_MIN


def _chisquare(draws: list[Any], expected: dict[Any, float]) -> float:
    """p-value of the draws against {value: probability}; small cells pooled with the rest."""
    counts = Counter(draws)
    assert set(counts) <= set(expected), set(counts) - set(expected)
    obs, exp = [], []
    pool_obs, pool_exp = 0.0, 1.0 - sum(expected.values())
    for value, p in expected.items():
        if p * N < 5:
            pool_obs += counts[value]
            pool_exp += p
        else:
            obs.append(counts[value])
            exp.append(p * N)
    if pool_exp * N >= 1e-9:
        obs.append(pool_obs)
        exp.append(max(pool_exp, 0.0) * N)
    exp_arr = np.array(exp) * (N / sum(exp))
    return float(stats.chisquare(obs, exp_arr).pvalue)


def _lattice(law: Any, q: float, lo: float, hi: float, *, as_int: bool) -> dict[Any, float]:
    """Probability of each value round(X/q)*q, W&B's quantization of the law."""
    out: dict[Any, float] = {}
    for k in range(math.floor(lo / q) - 1, math.ceil(hi / q) + 2):
        p = law.cdf((k + 0.5) * q) - law.cdf((k - 0.5) * q)
        if p > 0:
            value = float(np.round(k) * q)
            out[int(value) if as_int else value] = out.get(int(value) if as_int else value, 0) + p
    return out


QUANTIZED = [
    ({"distribution": "q_uniform", "min": 0, "max": 10, "q": 2}, stats.uniform(0, 10), 2, 0, 10),
    ({"distribution": "q_uniform", "min": -1, "max": 1, "q": 0.5}, stats.uniform(-1, 2), 0.5, -1, 1),
    ({"distribution": "q_log_uniform", "min": 0, "max": 3, "q": 1}, stats.loguniform(1, math.e**3), 1, 1, 21),
    ({"distribution": "q_log_uniform_values", "min": 32, "max": 256, "q": 8}, stats.loguniform(32, 256), 8, 32, 256),
    ({"distribution": "q_normal", "mu": 10, "sigma": 3, "q": 2}, stats.norm(10, 3), 2, -10, 30),
    ({"distribution": "q_log_normal", "mu": 2, "sigma": 0.5, "q": 1}, stats.lognorm(s=0.5, scale=math.e**2), 1, 0, 60),
    ({"distribution": "q_beta", "a": 2, "b": 3, "q": 0.1}, stats.beta(2, 3), 0.1, 0, 1),
]


@pytest.mark.parametrize(("spec", "law", "q", "lo", "hi"), QUANTIZED, ids=[json.dumps(row[0]) for row in QUANTIZED])
def test_quantized_law_chisquare(spec: dict[str, Any], law: Any, q: float, lo: float, hi: float) -> None:
    as_int = isinstance(q, int)
    draws = _draws(spec)
    assert all(type(x) is (int if as_int else float) for x in draws)
    # Compare on the lattice index so float noise (0.30000000000000004) cannot split cells.
    expected = _lattice(law, q, lo, hi, as_int=as_int)
    keyed = {round(v / q): p for v, p in expected.items()}
    assert _chisquare([round(x / q) for x in draws], keyed) > P_MIN


def test_categorical_law_chisquare() -> None:
    values = ["a", 1, None, [64, 32], {"k": 1}]
    draws = _draws({"values": values})
    idx = [values.index(d) for d in draws]
    assert _chisquare(idx, {i: 1 / 5 for i in range(5)}) > P_MIN


def test_weighted_categorical_law_chisquare() -> None:
    probs = [0.1, 0.0, 0.6, 0.3]
    draws = _draws({"values": ["a", "b", "c", "d"], "probabilities": probs})
    assert "b" not in draws
    assert _chisquare(draws, dict(zip("abcd", probs, strict=True))) > P_MIN


def test_constant_law() -> None:
    assert _draws({"value": {"a": [1]}}) == [{"a": [1]}] * N
    assert _draws({"value": None}) == [None] * N


def test_int_uniform_law_chisquare() -> None:
    draws = _draws({"min": -2, "max": 6})
    assert all(type(x) is int for x in draws)
    assert _chisquare(draws, {k: 1 / 9 for k in range(-2, 7)}) > P_MIN


def test_registry_has_every_wandb_form() -> None:
    assert sorted(REGISTRY) == sorted(
        [
            "constant",
            "categorical",
            "categorical_w_probabilities",
            "int_uniform",
            "uniform",
            "q_uniform",
            "log_uniform",
            "log_uniform_values",
            "q_log_uniform",
            "q_log_uniform_values",
            "inv_log_uniform",
            "inv_log_uniform_values",
            "normal",
            "q_normal",
            "log_normal",
            "q_log_normal",
            "beta",
            "q_beta",
        ]
    )
    for name, cls in REGISTRY.items():
        assert cls.name == name
        assert cls.encoding in ("const", "index", "int", "u")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_to_dict_rebuilds_the_same_distribution(name: str) -> None:
    examples = {
        "constant": {"value": [1, 2]},
        "categorical": {"values": [1, "a"]},
        "categorical_w_probabilities": {"values": [1, 2], "probabilities": [0.5, 0.5]},
        "int_uniform": {"min": 1, "max": 3},
    }
    spec = {"distribution": name, **examples.get(name, {"min": 1, "max": 2})}
    if name in ("normal", "q_normal", "log_normal", "q_log_normal", "beta", "q_beta"):
        spec = {"distribution": name}
    dist = build(spec)
    normalized = dist.to_dict()
    assert normalized["distribution"] == name
    assert build(normalized) == dist
    assert json.loads(json.dumps(normalized)) == normalized


def test_quantized_is_int_only_when_q_written_as_int() -> None:
    assert build({"distribution": "q_uniform", "min": 0, "max": 9, "q": 3}).ppf(0.5) == 4 + 2
    assert type(build({"distribution": "q_uniform", "min": 0, "max": 9, "q": 3}).ppf(0.5)) is int
    assert type(build({"distribution": "q_uniform", "min": 0, "max": 9}).ppf(0.5)) is float
    assert type(build({"distribution": "q_uniform", "min": 0, "max": 9, "q": 3.0}).ppf(0.5)) is float


def test_rounding_is_half_to_even() -> None:
    d = build({"distribution": "q_uniform", "min": 0, "max": 10, "q": 1})
    assert d.ppf(0.25) == 2  # 2.5 -> 2
    assert d.ppf(0.35) == 4  # 3.5 -> 4


def test_normal_at_u_edges_is_finite() -> None:
    d = build({"distribution": "normal"})
    assert math.isfinite(d.ppf(0.0)) and math.isfinite(d.ppf(1.0))
    assert build({"distribution": "normal", "mu": 2, "sigma": 0}).ppf(0.3) == 2.0


def test_categorical_edges_stay_in_range() -> None:
    d = build({"values": ["a", "b", "c"]})
    assert d.ppf(0.0) == "a"  # scipy's randint.ppf(0) would give index -1
    assert d.ppf(1.0) == "c"
    w = build({"values": ["a", "b"], "probabilities": [0.3, 0.7 - 1e-9]})
    assert w.ppf(0.9999999999) == "b"  # W&B wraps to index 0 here


def test_encoding_and_decode() -> None:
    cat = build({"values": ["x", "y"]})
    assert (cat.encoding, cat.n_choices, cat.decode(1)) == ("index", 2, "y")
    iu = build({"min": 3, "max": 5})
    assert (iu.encoding, iu.decode(4.0)) == ("int", 4)
    assert build({"value": 1}).encoding == "const"
    u = build({"distribution": "log_uniform_values", "min": 1, "max": 100})
    assert u.encoding == "u" and u.decode(0.5) == pytest.approx(10.0)
    assert build({"values": [1], "probabilities": [1]}).encoding == "u"


def test_container_values_are_fresh_copies() -> None:
    d = build({"values": [[1, 2]]})
    first = d.ppf(0.5)
    first.append(3)
    assert d.ppf(0.5) == [1, 2]


def test_space_nest_flatten_roundtrip_with_two_levels() -> None:
    space = Space(
        (
            (("opt", "sched", "warmup"), IntUniform(min=0, max=3)),
            (("opt", "lr"), Uniform(min=0.0, max=1.0)),
            (("seed",), Constant(value=1)),
            (("layers",), Categorical(values=([64, 32], [8]))),
        )
    )
    assert [p for p, _ in space.leaves] == [("layers",), ("opt", "lr"), ("opt", "sched", "warmup"), ("seed",)]
    nested = {"layers": [64, 32], "opt": {"lr": 0.5, "sched": {"warmup": 2}}, "seed": 1}
    flat = space.flatten(nested)
    assert flat[("layers",)] == [64, 32]  # a list value is one leaf, not flattened
    assert space.nest(flat) == nested
    assert space.flatten({"seed": 1}) == {("seed",): 1}


def test_sample_is_reproducible_per_seed() -> None:
    space = _space(
        {
            "a": {"min": 0.0, "max": 1.0},
            "b": {"values": [1, 2, 3]},
            "g": {"parameters": {"c": {"distribution": "normal"}}},
        }
    )
    one = [space.sample(np.random.default_rng(5)) for _ in range(3)]
    two = [space.sample(np.random.default_rng(5)) for _ in range(3)]
    assert one == two
    assert set(one[0]) == {"a", "b", "g"} and set(one[0]["g"]) == {"c"}
    assert space.sample(np.random.default_rng(6)) != one[0]


def test_grid_order_last_name_fastest_and_sorted_by_path() -> None:
    space = _space(
        {
            "z": {"values": [1, 2]},
            "a": {"values": ["x", "y"]},
            "m": {"parameters": {"k": {"values": [True, False]}}},
            "c": {"value": 0},
        }
    )
    points = space.grid()
    assert [(p["a"], p["m"]["k"], p["z"]) for p in points[:3]] == [("x", True, 1), ("x", True, 2), ("x", False, 1)]
    assert all(p["c"] == 0 for p in points)
    assert len(points) == space.grid_size() == 8


def test_grid_dedup_by_yaml_identity() -> None:
    space = _space({"v": {"values": [3e6, 3000000, True, 1, "1", 1.0, [1], [1.0]]}})
    values = [p["v"] for p in space.grid()]
    # 3e6 == 3000000 (last kept), True != 1, "1" != 1, 1 == 1.0 (last kept); lists compare by YAML.
    assert values == [3000000, True, 1.0, "1", [1], [1.0]]


def test_grid_int_uniform_and_q_uniform_ranges() -> None:
    space = _space({"i": {"min": 2, "max": 4}, "q": {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.25}})
    assert space.grid_size() == 3 * 4
    assert [p["q"] for p in space.grid()[:4]] == [0.0, 0.25, 0.5, 0.75]  # max left out, as W&B


def test_grid_refuses_continuous_distributions() -> None:
    with pytest.raises(ValueError, match="uniform has no grid"):
        Space(((("x",), Uniform(min=0.0, max=1.0)),)).grid()


def test_build_reports_every_problem_with_its_path() -> None:
    with pytest.raises(ConfigError) as err:
        build({"distribution": "q_uniform", "min": "a", "max": None, "q": 0, "z": 1}, path=("parameters", "p"))
    messages = [str(v) for v in err.value.violations]
    assert "parameters.p.min: must be a number (got string 'a')" in messages
    assert "parameters.p.max: must be a number (got null)" in messages
    assert any(m.startswith("parameters.p.z: unknown key for q_uniform") for m in messages)
    # Types are wrong, so no comparison of min and max (nor of q) is attempted.
    assert not any("greater" in m for m in messages)
