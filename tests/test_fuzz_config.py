"""Fuzzing the config path: whatever the input, `load` returns a SweepConfig or raises ConfigError,
quickly; and whatever validates also previews, renders its command and round-trips.

Thousands of cases, derandomized (the same cases on every run, no example database), sized to
run in well under a minute on two cores. Inputs: W&B-shaped configs built from the schema, the
same with parts replaced by junk (wrong types, huge numbers, NaN, unicode, deep nesting), YAML
token soup (anchors, aliases, merge keys, tags) and arbitrary text. What it found is kept in
tests/test_config_hostile.py and at the bottom of this file.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import random
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from sweepq import bounded
from sweepq.command import render
from sweepq.config import METHODS, SweepConfig, load, parse, to_yaml
from sweepq.errors import ConfigError
from sweepq.preview import preview
from sweepq.space import REGISTRY

# Seconds any one load may take, and MB of peak allocation for the text fuzz (a bomb is GBs).
MAX_SECONDS = 5.0
MAX_MB = 64

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,  # a loaded CI box stalls at random; time is asserted per call instead
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    print_blob=True,
)

_TMP = Path(tempfile.mkdtemp(prefix="sweepq-fuzz-"))

# -- strategies -------------------------------------------------------------------------------

EDGE_NUMBERS = [
    0,
    -1,
    1,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    10**30,
    0.0,
    -0.0,
    5e-324,
    1e-300,
    1e308,
    -1e308,
    1.7976931348623157e308,
    709.0,
    710.0,
    -745.0,
    float("nan"),
    float("inf"),
    float("-inf"),
]
numbers = st.one_of(
    st.integers(-1000, 1000),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.floats(0, 1),
    st.sampled_from(EDGE_NUMBERS),
)
TEXTS = ["", "grid", "${program}", "${args}", "1e-5", "\x85", "\ufeff", "é", "a b", "--x", "\ud800", "null"]
texts = st.text(max_size=12) | st.sampled_from(TEXTS)
scalars = st.one_of(numbers, texts, st.booleans(), st.none())
json_values = st.recursive(
    scalars, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(texts, kids, max_size=3), max_leaves=8
)
NAMES = ["x", "lr", "a.b", "_", "opt", "Z-1", "bs", "x" * 40]
names = st.sampled_from(NAMES)


@st.composite
def dist_spec(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["values", "value", "minmax", "named", "named", "named"]))
    if kind == "values":
        spec: dict[str, Any] = {"values": draw(st.lists(json_values, min_size=1, max_size=6))}
        if draw(st.booleans()):
            spec["probabilities"] = draw(st.lists(numbers, min_size=1, max_size=6))
        return spec
    if kind == "value":
        return {"value": draw(json_values)}
    if kind == "minmax":
        return {"min": draw(numbers), "max": draw(numbers)}
    name = draw(st.sampled_from(sorted(REGISTRY)))
    own = [f.name for f in dataclasses.fields(REGISTRY[name])] or ["q"]
    keys = draw(st.lists(st.sampled_from(own), unique=True, max_size=4))
    spec = {"distribution": name, **{k: draw(numbers) for k in keys}}
    if name in ("categorical", "categorical_w_probabilities", "constant"):
        spec.pop("min", None)
        spec["values" if name != "constant" else "value"] = draw(st.lists(json_values, min_size=1, max_size=4))
    return spec


parameters = st.recursive(
    st.dictionaries(names, dist_spec(), min_size=1, max_size=4),
    lambda kids: st.dictionaries(names, kids.map(lambda p: {"parameters": p}) | dist_spec(), min_size=1, max_size=3),
    max_leaves=6,
)
COMMAND_PARTS = ["${env}", "${interpreter}", "${program}", "${args}", "${args_no_hyphens}", "${args_json}"]
COMMAND_PARTS += ["${args_json_file}", "${args_no_boolean_flags}", "${envvar:HOME}", "--x=${y}", "python", "${unknown}"]
COMMAND_PARTS += ["${args_no_equals}", "${args_append_hydra}", "${args_override_hydra}", "${envvar:NOPE}/x", "${"]
commands = st.lists(st.sampled_from(COMMAND_PARTS), max_size=5)


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    """W&B-shaped, mostly valid: every top-level key W&B knows, with plausible values."""
    method = draw(st.sampled_from([*METHODS, "random", "random"]))
    data: dict[str, Any] = {"method": method, "parameters": draw(parameters)}
    if draw(st.booleans()):
        data["program"] = draw(st.sampled_from(["train.py", "pkg.mod:fn", "é.py"]))
    if draw(st.booleans()) or data["method"] == "bayes":
        data["metric"] = {"name": draw(names), "goal": draw(st.sampled_from(["minimize", "maximize"]))}
        if draw(st.booleans()):
            data["metric"]["target"] = draw(numbers)
    if draw(st.integers(0, 3)) == 0:
        kind = draw(st.sampled_from(["hyperband", "asha"]))
        rule: dict[str, Any] = {"type": kind, "min_iter": draw(st.integers(1, 10)), "eta": draw(numbers)}
        if draw(st.booleans()):
            rule.update(max_iter=draw(st.integers(1, 100) | st.sampled_from([2**63 - 1])), s=draw(st.integers(1, 5)))
            if kind == "asha":
                rule.pop("s")
        data["early_terminate"] = rule
    if draw(st.booleans()):
        data["command"] = draw(commands)
    if draw(st.booleans()):
        data["run_cap"] = draw(st.integers(-2, 10) | st.sampled_from([2**63 - 1]))
    return data


def _deep(depth: int, leaf: Any) -> Any:
    out = leaf
    for i in range(depth):
        out = [out] if i % 2 else {"k": out}
    return out


junk = st.one_of(
    scalars,
    json_values,
    st.sampled_from([[], {}, {"parameters": {}}, {"values": []}, {1: 2}, {None: 1}, (1, 2), 10**5000]),
    st.integers(60, 300).map(lambda n: _deep(n, 1)),
    st.integers(1, 3).map(lambda n: {"parameters": _deep(n, {"x": {"value": 1}})}),
)


def _paths(x: Any, pre: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into x, not below 12 levels (junk may already be 300 deep)."""
    deep = len(pre) >= 12
    children = [] if deep else x.items() if isinstance(x, dict) else enumerate(x) if isinstance(x, list) else []
    return [pre, *(p for k, v in children for p in _paths(v, (*pre, k)))]


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A config with 1-3 parts replaced by junk, deleted, or given a junk sibling key."""
    data = draw(configs())
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(data)[1:]
        path = draw(st.sampled_from(paths))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "replace" or not isinstance(parent, dict):
            parent[path[-1]] = draw(junk)
        elif action == "delete":
            del parent[path[-1]]
        else:
            parent[draw(texts | st.sampled_from(["distribution", "q", "parameters", "job", "<<"]))] = draw(junk)
    return data


YAML_TOKENS = [
    "method: grid\n", "method: random\n", "program: t.py\n", "parameters:\n", "  x:\n", "    values: ",
    "    value: ", "    min: ", "    max: ", "    distribution: ", "q_uniform", "int_uniform", "&a ", "&b ", "*a",
    "*b", "<<: ", "[", "]", "{", "}", ", ", ": ", "- ", "\n", "  ", "    ", "? ", "!!int ", "!!float ",
    "!!binary ", "!!set ", "!!omap ", "!!python/object:os.system ", "!!str ", "---\n", "...\n", "%YAML 1.1\n",
    "%TAG ! tag:x,2000:\n", "|\n", ">\n", "'", '"', "#", "1e5", "1e999", "-.inf", ".nan", "0x7f", "0o17", "0b101",
    "1_000", "1:30:00", "9223372036854775808", "2001-12-14", "~", "null", "yes", "on", "\t", "\\u0000", "é",
    "\x85", "\ufeff", "\x00", "\r\n",
]  # fmt: skip
yaml_soup = st.lists(st.sampled_from(YAML_TOKENS), max_size=40).map("".join)
raw_text = st.text(max_size=300)

# -- properties -------------------------------------------------------------------------------


def _finite_json(x: Any) -> None:
    """What preview prints must be real JSON: no NaN or Infinity anywhere."""
    json.dumps(x, allow_nan=False)


def _check_valid(config: SweepConfig) -> None:
    """Everything that validates previews, renders its command and round-trips."""
    assert isinstance(config, SweepConfig)
    normal = config.to_dict()
    _finite_json(normal)
    assert parse(normal) == config
    again = _TMP / "again.yaml"
    again.write_text(to_yaml(config))
    assert load(again, require_program=False) == config
    for item in preview(config, n=3, seed=0):
        _finite_json(item)
        params = item["params"]
        assert set(params) == {path[0] for path, _ in config.space.leaves}
        if config.program is not None or "${program}" not in config.command:
            argv = render(config, params, args_json_file="/tmp/args.json", environ={"HOME": "/h"})
            assert all(isinstance(a, str) for a in argv)
            assert argv == item["command"] or item["command"] is not None


def _check_error(err: ConfigError) -> None:
    assert err.violations
    for v in err.violations:
        assert str(v) and "Traceback" not in str(v)


def _load_timed(source: Any, **kw: Any) -> SweepConfig | None:
    t0 = time.perf_counter()
    try:
        return load(source, **kw)
    except ConfigError as err:
        _check_error(err)
        return None
    finally:
        assert time.perf_counter() - t0 < MAX_SECONDS


@settings(FUZZ, max_examples=300)
@given(configs())
def test_wandb_shaped_configs(data: dict[str, Any]) -> None:
    config = _load_timed(data)
    if config is not None:
        _check_valid(config)


@settings(FUZZ, max_examples=300)
@given(mutated())
def test_mutated_configs(data: dict[str, Any]) -> None:
    config = _load_timed(data)
    if config is not None:
        _check_valid(config)


@settings(FUZZ, max_examples=150)
@given(configs(), st.sampled_from(["yaml", "json"]))
def test_configs_as_files(data: dict[str, Any], form: str) -> None:
    """The same configs through the file readers, as `sweepq validate` reads them."""
    path = _TMP / f"c.{form}"
    try:
        import yaml  # type: ignore[import-untyped,unused-ignore]

        path.write_text(json.dumps(data) if form == "json" else yaml.safe_dump(data))
    except (ValueError, OverflowError):
        return
    config = _load_timed(path)
    if config is not None:
        _check_valid(config)


def _text_case(text: str) -> None:
    path = _TMP / "t.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    tracemalloc.start()
    try:
        config = _load_timed(path, require_program=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MAX_MB * 2**20
    if config is not None:
        _check_valid(config)


@settings(FUZZ, max_examples=800)
@given(yaml_soup)
def test_yaml_token_soup(text: str) -> None:
    _text_case(text)


@settings(FUZZ, max_examples=400)
@given(raw_text)
def test_arbitrary_text(text: str) -> None:
    _text_case(text)


@settings(FUZZ, max_examples=60)
@given(st.integers(1, 10), st.integers(2, 10), st.sampled_from(["seq", "map", "merge"]))
def test_alias_bombs_of_any_shape(levels: int, width: int, shape: str) -> None:
    """Refused when the expansion passes the limit, loaded when it does not; never slow or big."""
    lines = ["method: random", "program: t.py", "l0: &l0 [1]" if shape == "seq" else "l0: &l0 {k: 1}"]
    for i in range(1, levels + 1):
        refs = ", ".join([f"*l{i - 1}"] * width)
        body = {"seq": f"[{refs}]", "map": "{" + ", ".join(f"k{j}: *l{i - 1}" for j in range(width)) + "}"}
        lines.append(f"l{i}: &l{i} " + body.get(shape, f"{{<<: [{refs}]}}"))
    lines.append(f"parameters: {{x: {{value: *l{levels}}}}}")
    _text_case("\n".join(lines) + "\n")
    expanded = width**levels
    path = _TMP / "t.yaml"
    if shape == "map" and expanded * 2 > bounded.MAX_NODES:
        assert _load_timed(path) is None


# -- many more cases, cheaply: a seeded plain-random generator of the same shapes ------------
# Hypothesis spends ~30 ms building one nested config; this builds one in ~0.1 ms, so the seeded
# bulk run covers thousands of configs in seconds (a failure names its seed, which reproduces it).


IN_RANGE = [x for x in EDGE_NUMBERS if not isinstance(x, int) or -(2**63) <= x < 2**63]
IN_RANGE = [x for x in IN_RANGE if not isinstance(x, float) or math.isfinite(x)]


def _r_number(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.04:
        return rng.choice(EDGE_NUMBERS)
    if roll < 0.35:
        return rng.choice(IN_RANGE)
    if roll < 0.65:
        return rng.randint(-100, 100)
    return rng.choice([rng.uniform(-10, 10), rng.uniform(0, 1), 10 ** rng.uniform(-300, 300)])


def _r_scalar(rng: random.Random) -> Any:
    return rng.choice([_r_number, lambda r: r.choice(TEXTS), lambda r: r.random() < 0.5, lambda r: None])(rng)


def _r_json(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 2 or roll < 0.7:
        return _r_scalar(rng)
    if roll < 0.85:
        return [_r_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(TEXTS): _r_json(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def _r_spec(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(["values", "value", "minmax", "named", "named", "named"])
    if kind == "values":
        spec: dict[str, Any] = {"values": [_r_json(rng) for _ in range(rng.randint(1, 5))]}
        if rng.random() < 0.3:
            spec["probabilities"] = [rng.choice([0.5, 0.25, 1.0, 0.0, 1e308, -0.5]) for _ in spec["values"]]
        return spec
    if kind == "value":
        return {"value": _r_json(rng)}
    if kind == "minmax":
        return {"min": _r_number(rng), "max": _r_number(rng)}
    name = rng.choice(sorted(REGISTRY))
    spec = {"distribution": name}
    own = [f.name for f in dataclasses.fields(REGISTRY[name])]
    keys = rng.sample(own, rng.randint(0, len(own)))
    if rng.random() < 0.1:
        keys.append(rng.choice(["min", "max", "q", "mu", "sigma", "a", "b"]))
    for key in keys:
        spec[key] = _r_number(rng)
    if "min" in spec and "max" in spec and rng.random() < 0.7:  # mostly ordered, to validate
        spec["min"], spec["max"] = sorted([spec["min"], spec["max"]])
    if name in ("categorical", "categorical_w_probabilities"):
        spec = {"distribution": name, "values": [_r_json(rng) for _ in range(rng.randint(1, 4))]}
    elif name == "constant":
        spec = {"distribution": name, "value": _r_json(rng)}
    return spec


POSITIVE = [x for x in IN_RANGE if x > 0]


def _r_finite(rng: random.Random) -> Any:
    x = _r_number(rng)
    return x if x in IN_RANGE or isinstance(x, float) and math.isfinite(x) or -100 <= x <= 100 else 0


def _r_clean_spec(rng: random.Random) -> dict[str, Any]:
    """A spec meant to validate, with edge values (huge bounds, tiny q) where the law allows."""
    name = rng.choice(sorted(REGISTRY))
    if name in ("categorical", "constant", "categorical_w_probabilities"):
        return _r_spec(rng) if name != "constant" else {"value": _r_json(rng)}
    spec: dict[str, Any] = {"distribution": name}
    for f in dataclasses.fields(REGISTRY[name]):
        spec[f.name] = rng.choice(POSITIVE) if f.name in ("q", "sigma", "a", "b") else _r_finite(rng)
    if "min" in spec:
        lo, hi = sorted([spec["min"], spec["max"]])
        if "values" in name:
            lo, hi = abs(lo) or 1e-3, abs(hi) or 1.0
            lo, hi = sorted([lo, hi])
        if name.endswith("log_uniform"):  # exponents
            lo, hi = max(min(lo, 700), -700), max(min(hi, 700), -700)
        if name == "int_uniform":
            lo, hi = int(max(min(lo, 2**62), -(2**62))), int(max(min(hi, 2**62), -(2**62)))
        spec["min"], spec["max"] = lo, hi + (1 if isinstance(hi, int) else 1.0) if lo == hi else hi
    return spec


def _r_params(rng: random.Random, depth: int = 0, clean: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for _ in range(rng.randint(1, 4)):
        nest = depth < 3 and rng.random() < 0.15
        spec = _r_clean_spec(rng) if clean else _r_spec(rng)
        out[rng.choice(NAMES)] = {"parameters": _r_params(rng, depth + 1, clean)} if nest else spec
    return out


def _r_config(rng: random.Random, clean: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {"method": rng.choice([*METHODS, "random"]), "parameters": _r_params(rng, 0, clean)}
    if rng.random() < 0.6:
        data["program"] = "train.py"
    if rng.random() < 0.5 or data["method"] == "bayes":
        data["metric"] = {"name": rng.choice(NAMES), "goal": rng.choice(["minimize", "maximize"])}
    if rng.random() < 0.2:
        data["early_terminate"] = {"type": "hyperband", "min_iter": rng.randint(1, 5), "eta": _r_number(rng)}
    if rng.random() < 0.4:
        data["command"] = rng.sample(COMMAND_PARTS, rng.randint(0, 4))
    if rng.random() < 0.2:
        data["run_cap"] = rng.choice([1, 0, -1, 2**63 - 1, 2**63, 1.5, "3"])
    return data


JUNK = [None, True, 0, -1, 2.5, float("inf"), float("nan"), "", "grid", [], [1], {}, {"value": 1}, 10**30, 10**5000]
JUNK += [{"parameters": {}}, {"values": []}, {1: 2}, {None: 1}, (1, 2), "\x00", "é" * 50, _deep(70, 1), _deep(300, {})]


def _r_mutate(rng: random.Random, data: dict[str, Any]) -> dict[str, Any]:
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(_paths(data)[1:])
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        roll = rng.random()
        if roll < 0.6 or not isinstance(parent, dict):
            parent[path[-1]] = copy.deepcopy(rng.choice([*JUNK, _r_number(rng), _r_json(rng)]))
        elif roll < 0.8:
            del parent[path[-1]]
        else:
            parent[rng.choice([*TEXTS, "distribution", "q", "parameters", "<<"])] = copy.deepcopy(rng.choice(JUNK))
    return data


@settings(FUZZ, max_examples=3000)
@given(st.integers(0, 2**32 - 1), st.booleans())
def test_seeded_bulk_configs(seed: int, mutate: bool) -> None:
    rng = random.Random(seed)
    data = _r_config(rng, clean=not mutate and seed % 2 == 0)
    if mutate:
        data = _r_mutate(rng, data)
    config = _load_timed(data)
    if config is not None:
        _check_valid(config)


# -- what the fuzzer found, kept as explicit regressions ------------------------------------------


def test_found_beta_with_huge_a_and_b_drew_nan() -> None:
    """betaincinv(1e308, 1e308, u) is nan; the draw is now the law's mean."""
    config = parse({"method": "random", "parameters": {"x": {"distribution": "beta", "a": 1e308, "b": 1e308}}})
    assert [i["params"]["x"] for i in preview(config, n=2)] == [0.5, 0.5]


def test_found_normal_with_huge_sigma_drew_inf() -> None:
    config = parse({"method": "random", "parameters": {"x": {"distribution": "normal", "sigma": 1e308}}})
    assert all(math.isfinite(i["params"]["x"]) for i in preview(config, n=50))
