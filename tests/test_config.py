"""Config parsing: W&B's forms, every violation with its key path, normalization round trip."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sweepq.config import DEFAULT_COMMAND, EarlyTerminate, Metric, SweepConfig, load, parse
from sweepq.errors import ConfigError
from sweepq.space import REGISTRY

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _cfg(**parameters: Any) -> dict[str, Any]:
    return {"method": "random", "parameters": parameters or {"x": {"value": 1}}}


def _errors(data: Any) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse(data)
    return [str(v) for v in err.value.violations]


def _kinds(config: SweepConfig) -> dict[str, str]:
    return {".".join(p): d.name for p, d in config.space.leaves}


def test_parameter_forms_inferred_as_wandb_does() -> None:
    config = parse(
        _cfg(
            a={"values": [1, 2]},
            b={"values": [1, 2], "probabilities": [0.5, 0.5]},
            c={"value": None},
            d={"min": 1, "max": 5},
            e={"min": 1, "max": 5.0},
            f={"min": 0.1, "max": 1},
            g={"distribution": "categorical", "values": [1], "probabilities": [1.0]},
        )
    )
    assert _kinds(config) == {
        "a": "categorical",
        "b": "categorical_w_probabilities",
        "c": "constant",
        "d": "int_uniform",
        "e": "uniform",
        "f": "uniform",
        "g": "categorical_w_probabilities",
    }


def test_defaults_filled_and_metric_goal_minimize() -> None:
    config = parse({"method": "bayes", "metric": {"name": "loss"}, "parameters": {"x": {"distribution": "q_normal"}}})
    assert config.metric == Metric(name="loss", goal="minimize", target=None)
    assert config.to_dict()["parameters"]["x"] == {"distribution": "q_normal", "mu": 0.0, "sigma": 1.0, "q": 1.0}
    assert config.command == DEFAULT_COMMAND
    assert config.early_terminate is None and config.run_cap is None


def test_every_violation_reported_at_once_with_paths() -> None:
    errors = _errors(
        {
            "method": "hyperopt",
            "run_cap": True,
            "metric": {"name": "loss", "goal": "max"},
            "parameters": {
                "lr": {"min": 0.5, "max": 0.1},
                "bs": {"distribution": "int_uniform", "min": 1.5, "max": 8},
                "9bad": {"value": 1},
            },
            "colour": "blue",
        }
    )
    assert errors == [
        "colour: unknown key (allowed: method, metric, parameters, early_terminate, command, "
        "run_cap, program, name, description, project, entity)",
        "method: 'hyperopt' is not one of grid, random, bayes",
        "metric.goal: 'max' is not one of minimize, maximize",
        "run_cap: must be an integer (got boolean True)",
        "parameters.lr.max: must be greater than min (0.1 <= 0.5)",
        "parameters.bs.min: must be an integer (got float 1.5)",
        "parameters.9bad: invalid parameter name '9bad': must match ^[A-Za-z_][A-Za-z0-9_.-]*$",
    ]


def test_types_checked_before_values_compared() -> None:
    errors = _errors(_cfg(lr={"min": "0.1", "max": 0.01}))
    assert errors == ["parameters.lr.min: must be a number (got string '0.1')"]


def test_unknown_key_suggests_the_close_one() -> None:
    assert _errors({"method": "grid", "paramters": {}})[0] == ("paramters: unknown key (did you mean parameters?)")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"values": []}, "parameters.p.values: must not be empty"),
        (
            {"values": [1, 2], "probabilities": [0.5]},
            "parameters.p.probabilities: must have one entry per value (1 != 2)",
        ),
        ({"values": [1, 2], "probabilities": [0.5, 0.6]}, "parameters.p.probabilities: must sum to 1 (sum is 1.1)"),
        ({"values": [1, 2], "probabilities": [-0.5, 1.5]}, "parameters.p.probabilities.0: must be >= 0"),
        ({"distribution": "normal", "sigma": -1}, "parameters.p.sigma: must be >= 0 (got -1)"),
        ({"distribution": "beta", "a": 0}, "parameters.p.a: must be greater than 0 (got 0)"),
        ({"distribution": "q_beta", "b": -1}, "parameters.p.b: must be greater than 0 (got -1)"),
        (
            {"distribution": "log_uniform_values", "min": 0, "max": 1},
            "parameters.p.min: must be greater than 0 for log_uniform_values (got 0)",
        ),
        ({"distribution": "q_uniform", "min": 0, "max": 1, "q": 0}, "parameters.p.q: must be greater"),
        ({"distribution": "uniform", "min": 0}, "parameters.p.max: required for uniform"),
        (
            {"distribution": "lognormal"},
            "parameters.p.distribution: 'lognormal' is not a distribution; did you mean log_normal?",
        ),
        ({"q": 2}, "parameters.p: cannot tell the distribution"),
        ({"min": 1, "max": 2, "q": 1}, "parameters.p.q: unknown key for int_uniform"),
        ({"value": 1, "values": [1]}, "parameters.p.value: unknown key for categorical"),
        ({"distribution": "log_uniform", "min": 0, "max": 1000}, "exp(1000) overflows"),
        ({"distribution": "uniform", "min": float("-inf"), "max": 1}, "parameters.p.min: must be finite"),
        ({"value": {1: "a"}}, "parameters.p.value: mapping keys must be strings"),
        ("0.1", "parameters.p: must be a mapping (got string '0.1')"),
    ],
)
def test_parameter_violations(spec: Any, message: str) -> None:
    errors = _errors(_cfg(p=spec))
    assert any(e.startswith(message) or message in e for e in errors), errors


def test_grid_only_with_discrete_forms() -> None:
    errors = _errors(
        {
            "method": "grid",
            "parameters": {
                "a": {"min": 0.0, "max": 1.0},
                "b": {"values": [1, 2], "probabilities": [0.5, 0.5]},
                "c": {"distribution": "normal"},
                "ok": {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.5},
            },
        }
    )
    assert errors == [
        "parameters.a: uniform cannot be used with method: grid (grid takes values, value, int_uniform or q_uniform)",
        "parameters.b.probabilities: cannot be used with method: grid",
        "parameters.c: normal cannot be used with method: grid (grid takes values, value, int_uniform or q_uniform)",
    ]


def test_bayes_and_early_terminate_need_a_metric() -> None:
    assert "metric: required when method is bayes" in _errors(
        {"method": "bayes", "parameters": {"x": {"min": 0.0, "max": 1.0}}}
    )
    assert "metric: required by early_terminate" in _errors(
        {**_cfg(), "early_terminate": {"type": "hyperband", "min_iter": 3}}
    )


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"type": "hyperband", "min_iter": 3}, EarlyTerminate(type="hyperband", min_iter=3, eta=3, strict=True)),
        (
            {"type": "hyperband", "max_iter": 27, "s": 2, "eta": 3, "strict": False},
            EarlyTerminate(type="hyperband", max_iter=27, s=2, eta=3, strict=False),
        ),
        (
            {"type": "asha", "min_iter": 1, "max_iter": 81, "eta": 3},
            EarlyTerminate(type="asha", min_iter=1, max_iter=81, eta=3),
        ),
    ],
)
def test_early_terminate_forms(rule: dict[str, Any], expected: EarlyTerminate) -> None:
    config = parse({**_cfg(), "metric": {"name": "loss"}, "early_terminate": rule})
    assert config.early_terminate == expected


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"type": "hyperband"}, "early_terminate: hyperband needs min_iter, or max_iter and s"),
        ({"type": "hyperband", "max_iter": 27}, "early_terminate.s: required with max_iter"),
        ({"type": "hyperband", "s": 2}, "early_terminate.max_iter: required with s"),
        ({"type": "hyperband", "min_iter": 3, "eta": 1}, "early_terminate.eta: must be greater than 1"),
        ({"type": "hyperband", "min_iter": 0}, "early_terminate.min_iter: must be at least 1 (got 0)"),
        ({"type": "hyperband", "min_iter": 3, "strict": "yes"}, "early_terminate.strict: must be true"),
        ({"type": "hyperband", "max_iter": 2, "s": 1}, "early_terminate.max_iter: gives no bands"),
        ({"type": "median"}, "early_terminate.type: 'median' is not one of hyperband, asha"),
        ({"type": "asha", "min_iter": 9, "max_iter": 3}, "early_terminate.max_iter: must be greater"),
        ({"type": "asha", "s": 2}, "early_terminate.s: unknown key"),
    ],
)
def test_early_terminate_violations(rule: dict[str, Any], message: str) -> None:
    errors = _errors({**_cfg(), "metric": {"name": "loss"}, "early_terminate": rule})
    assert any(e.startswith(message) for e in errors), errors


def test_command_must_be_list_of_strings() -> None:
    assert _errors({**_cfg(), "command": "python train.py"}) == [
        "command: must be a list of strings (got string 'python train.py')"
    ]
    assert _errors({**_cfg(), "command": ["python", 3]}) == ["command.1: must be a string (got integer 3)"]
    assert parse({**_cfg(), "command": []}).command == DEFAULT_COMMAND  # W&B: [] is the default


def test_in_element_parameter_macro_warns() -> None:
    config = parse({**_cfg(), "command": ["x", "--bs=${batch_size}", "${envvar:HOME}/a"]})
    assert len(config.warnings) == 1 and "command.1" in config.warnings[0]


def test_deprecated_exponent_forms_warn_with_values_form() -> None:
    config = parse(
        _cfg(
            a={"distribution": "log_uniform", "min": -5, "max": -1},
            b={"distribution": "q_log_uniform", "min": 0, "max": 3},
            c={"distribution": "inv_log_uniform", "min": 0, "max": 3},
        )
    )
    assert [w.split(":")[0] for w in config.warnings] == ["parameters.a", "parameters.b", "parameters.c"]
    assert "use log_uniform_values" in config.warnings[0]
    assert "use q_log_uniform_values" in config.warnings[1]
    assert "use inv_log_uniform_values" in config.warnings[2]


def test_run_cap_and_texts() -> None:
    assert parse({**_cfg(), "run_cap": 5, "name": "n", "program": "t.py"}).run_cap == 5
    assert _errors({**_cfg(), "run_cap": 0}) == ["run_cap: must be at least 1 (got 0)"]
    assert _errors({**_cfg(), "run_cap": 2.0}) == ["run_cap: must be an integer (got float 2.0)"]
    assert _errors({**_cfg(), "program": 5}) == ["program: must be a string (got integer 5)"]


def test_required_sections() -> None:
    assert _errors({}) == [
        "method: required: one of grid, random, bayes",
        "parameters: required: at least one parameter",
    ]
    assert _errors({"method": "grid", "parameters": {}}) == ["parameters: must name at least one parameter"]
    assert _errors([1]) == ["a sweep config must be a mapping (got list [1])"]


def test_wandb_only_keys() -> None:
    config = parse({**_cfg(), "controller": {"type": "local"}, "apiVersion": "v1"})
    assert config.warnings == ("controller: W&B-only key, ignored", "apiVersion: W&B-only key, ignored")
    assert _errors({**_cfg(), "metrics": []})[0].startswith("metrics: multi-objective")
    assert _errors({**_cfg(), "metric": {"name": "l", "impute": "median"}}) == [
        "metric.impute: 'median' is not one of latest, best, worst"
    ]


def test_nested_groups_any_depth() -> None:
    config = load(EXAMPLES / "nested.yaml")
    assert [p for p, _ in config.space.leaves] == [
        ("model", "depth"),
        ("model", "width"),
        ("optimizer", "name"),
        ("optimizer", "schedule", "kind"),
        ("optimizer", "schedule", "warmup"),
        ("seed",),
    ]
    assert config.space.grid_size() == 2 * 2 * 2 * 2
    assert config.space.grid()[0] == {
        "model": {"depth": 2, "width": 64},
        "optimizer": {"name": "adam", "schedule": {"kind": "cosine", "warmup": 0}},
        "seed": 0,
    }


def test_nested_group_violations_have_full_paths() -> None:
    errors = _errors(_cfg(opt={"parameters": {"lr": {"min": 1.0, "max": 0.5}, "sub": {"parameters": {}}}, "extra": 1}))
    assert errors == [
        "parameters.opt.extra: a nested group holds only `parameters`",
        "parameters.opt.parameters.lr.max: must be greater than min (0.5 <= 1.0)",
        "parameters.opt.parameters.sub.parameters: must name at least one parameter",
    ]


ROUND_TRIP = [
    EXAMPLES / "wandb-sweepdemo.yaml",
    EXAMPLES / "wandb-q-log-uniform.yaml",
    EXAMPLES / "nested.yaml",
]


@pytest.mark.parametrize("path", ROUND_TRIP, ids=lambda p: p.name)
def test_to_dict_round_trips(path: Path) -> None:
    config = load(path)
    normalized = config.to_dict()
    assert json.loads(json.dumps(normalized)) == normalized
    again = SweepConfig.from_dict(json.loads(json.dumps(normalized)))
    assert again == config
    assert again.to_dict() == normalized


def test_every_distribution_round_trips() -> None:
    params = {}
    for name in REGISTRY:
        spec: dict[str, Any] = {"distribution": name}
        if name == "constant":
            spec["value"] = {"nested": [1, 2]}
        elif name.startswith("categorical"):
            spec["values"] = ["a", 2]
            if name != "categorical":
                spec["probabilities"] = [0.25, 0.75]
        elif name not in ("normal", "q_normal", "log_normal", "q_log_normal", "beta", "q_beta"):
            spec.update(min=1, max=3)
        params[name] = spec
    config = parse(
        {
            "method": "random",
            "metric": {"name": "m", "goal": "maximize", "target": 1},
            "early_terminate": {"type": "hyperband", "max_iter": 9, "s": 2},
            "parameters": params,
            "run_cap": 3,
            "program": "p.py",
            "command": ["${program}", "${args_json}"],
            "name": "n",
            "project": "pr",
            "entity": "e",
            "description": "d",
        }
    )
    normalized = config.to_dict()
    assert all("distribution" in spec for spec in normalized["parameters"].values())
    assert SweepConfig.from_dict(normalized) == config
    assert parse(json.loads(json.dumps(normalized))).to_dict() == normalized


def test_yaml_floats_in_exponent_notation() -> None:
    config = load_text("method: grid\nprogram: t.py\nparameters:\n  wd:\n    values: [1e-5, 3e6, 3000000, 1.5E+2]\n")
    assert [p["wd"] for p in config.space.grid()] == [1e-5, 3000000, 150.0]


def load_text(text: str, suffix: str = ".yaml") -> SweepConfig:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"sweep{suffix}"
        path.write_text(text)
        return load(path)


def test_yaml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("method: grid\nparameters:\n  x: {values: [1, 2}\n")
    with pytest.raises(ConfigError) as err:
        load(path)
    (violation,) = err.value.violations
    assert violation.path == (str(path),)
    assert "line 3, column " in violation.message


def test_yaml_duplicate_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("method: grid\nparameters:\n  x: {value: 1}\n  x: {value: 2}\n")
    with pytest.raises(ConfigError, match=r"line 4, column 3: duplicate key 'x'"):
        load(path)


def test_json_file_and_json_syntax_error(tmp_path: Path) -> None:
    good = tmp_path / "s.json"
    good.write_text(json.dumps({**_cfg(), "program": "t.py"}))
    assert load(good).method == "random"
    bad = tmp_path / "b.json"
    bad.write_text('{"method": "grid",\n "parameters": }')
    with pytest.raises(ConfigError, match=r"line 2, column 16: Expecting value"):
        load(bad)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read: No such file"):
        load(tmp_path / "nope.yaml")
    (tmp_path / "e.yaml").write_text("# nothing\n")
    with pytest.raises(ConfigError, match="the sweep config is empty"):
        load(tmp_path / "e.yaml")


def test_load_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("method: random\nprogram: t.py\nparameters: {x: {value: 1}}\n"))
    assert load("-").method == "random"
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({**_cfg(), "program": "t.py"})))
    assert load("-").method == "random"
    monkeypatch.setattr("sys.stdin", io.StringIO("{method: grid, program: t.py, parameters: {x: {value: 1}}}"))
    assert load("-").method == "grid"  # YAML flow style, not JSON
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(ConfigError, match="<stdin>: the sweep config is empty"):
        load("-")
    monkeypatch.setattr("sys.stdin", io.StringIO("{method: [}"))
    with pytest.raises(ConfigError, match="<stdin>: line 1, column"):
        load("-")


def test_dict_input_with_numpy_scalars_and_tuples() -> None:
    config = load(
        {
            "method": "grid",
            "parameters": {"a": {"values": (np.int64(1), np.float32(0.5))}, "b": {"min": np.int64(1), "max": 3}},
        }
    )
    assert config.to_dict()["parameters"]["a"]["values"] == [1, 0.5]
    assert _kinds(config)["b"] == "int_uniform"
    json.dumps(config.to_dict())


def test_non_json_values_rejected() -> None:
    import datetime

    errors = _errors(_cfg(d={"values": [datetime.date(2024, 1, 1)]}))
    assert errors == ["parameters.d.values: date is not a JSON value"]


def test_raw_keeps_the_input() -> None:
    data = _cfg(x={"min": 1, "max": 2})
    assert parse(data).raw == data


def test_grid_size_limit() -> None:
    assert parse({"method": "grid", "parameters": {"n": {"min": 1, "max": 1_000_000}}})
    errors = _errors(
        {
            "method": "grid",
            "parameters": {
                "n": {"min": 1, "max": 10**18},
                "q": {"distribution": "q_uniform", "min": 0, "max": 1, "q": 1e-9},
            },
        }
    )
    assert errors == [f"parameters: the grid has {10**18 * 10**9:,} points; sweepq runs at most 1,000,000"]


def test_non_finite_values_rejected() -> None:
    assert _errors(_cfg(v={"values": [1.0, float("nan")]})) == ["parameters.v.values: nan is not a JSON value"]


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "method: random\nprogram: t.py\nparameters:\n  a: &b {min: 1, max: 4}\n  c:\n    <<: *b\n    max: 9\n"
    )
    config = load(path)
    assert config.to_dict()["parameters"]["c"] == {"distribution": "int_uniform", "min": 1, "max": 9}


def _mutations(seed: int, count: int) -> list[Any]:
    """Valid configs with 1-3 random parts replaced by junk or removed."""
    import copy
    import random

    bases = [load(EXAMPLES / name).raw for name in ("wandb-sweepdemo.yaml", "wandb-q-log-uniform.yaml", "nested.yaml")]
    junk = [
        None,
        True,
        0,
        -1,
        2.5,
        float("inf"),
        "",
        "grid",
        [],
        [1],
        {},
        {"value": 1},
        {"parameters": {}},
        {"values": []},
        10**30,
    ]
    rng = random.Random(seed)

    def paths(x: Any, pre: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        children = x.items() if isinstance(x, dict) else enumerate(x) if isinstance(x, list) else []
        return [pre, *(p for k, v in children for p in paths(v, (*pre, k)))]

    out = []
    for _ in range(count):
        data = copy.deepcopy(rng.choice(bases))
        for _ in range(rng.randint(1, 3)):
            path = rng.choice(paths(data)[1:])
            parent = data
            for key in path[:-1]:
                parent = parent[key]
            if rng.random() < 0.8 or not isinstance(parent, dict):
                parent[path[-1]] = copy.deepcopy(rng.choice(junk))
            else:
                del parent[path[-1]]
        out.append(data)
    return out


def test_mutated_configs_give_config_error_or_a_round_tripping_config() -> None:
    """Never a crash: junk anywhere is a ConfigError; what parses previews and round-trips."""
    from sweepq.preview import preview

    for data in _mutations(seed=3, count=400):
        try:
            config = parse(data)
        except ConfigError as err:
            assert err.violations
            continue
        json.dumps(list(preview(config, n=2, seed=0)))
        assert parse(json.loads(json.dumps(config.to_dict()))) == config
