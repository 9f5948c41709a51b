"""Command macros rendered to argv exactly as W&B's agent renders them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sweepq.command import args_json, needs_args_json_file, render
from sweepq.config import SweepConfig, parse
from sweepq.errors import ConfigError

# W&B's own test row (wandb tests: test_agent_create_command_args).
PARAMS = {"a": True, "b": False, "c": 1, "d": None}


def _config(command: list[str] | None, program: str | None = "train.py") -> SweepConfig:
    data: dict[str, Any] = {"method": "random", "parameters": {"x": {"value": 1}}}
    if command is not None:
        data["command"] = command
    if program is not None:
        data["program"] = program
    return parse(data)


def _render(macro: str, params: dict[str, Any] = PARAMS, **kw: Any) -> list[str]:
    return render(_config([macro]), params, **kw)


@pytest.mark.parametrize(
    ("macro", "expected"),
    [
        ("${args}", ["--a=True", "--b=False", "--c=1", "--d=None"]),
        ("${args_no_equals}", ["--a", "True", "--b", "False", "--c", "1", "--d", "None"]),
        ("${args_no_hyphens}", ["a=True", "b=False", "c=1", "d=None"]),
        ("${args_no_boolean_flags}", ["--a", "--c=1", "--d=None"]),
        ("${args_json}", ['{"a": true, "b": false, "c": 1, "d": null}']),
        ("${args_append_hydra}", ["+a=True", "+b=False", "+c=1", "+d=None"]),
        ("${args_override_hydra}", ["++a=True", "++b=False", "++c=1", "++d=None"]),
        ("${env}", ["/usr/bin/env"]),
        ("${interpreter}", ["python"]),
        ("${program}", ["train.py"]),
    ],
)
def test_each_macro(macro: str, expected: list[str]) -> None:
    assert _render(macro) == expected


def test_default_command() -> None:
    assert render(_config(None), {"lr": 0.001, "layers": [64, 32]}) == [
        "/usr/bin/env",
        "python",
        "train.py",
        "--lr=0.001",
        "--layers=[64, 32]",
    ]


def test_values_render_with_python_str() -> None:
    assert _render("${args}", {"f": 1e-05, "s": "a b", "l": [1, "x"], "t": 3.0}) == [
        "--f=1e-05",
        "--s=a b",
        "--l=[1, 'x']",
        "--t=3.0",
    ]


def test_args_json_file_gets_the_given_path() -> None:
    config = _config(["${program}", "--config", "${args_json_file}"])
    assert needs_args_json_file(config)
    assert render(config, PARAMS, args_json_file="/tmp/t1.json") == ["train.py", "--config", "/tmp/t1.json"]
    with pytest.raises(ValueError, match="args_json_file"):
        render(config, PARAMS)
    assert not needs_args_json_file(_config(None))
    assert json.loads(args_json({"g": {"x": 1}})) == {"g": {"x": 1}}


def test_unknown_wholly_macro_elements_dropped_others_kept() -> None:
    config = _config(["${foo}", "${args_dict}", "--bs=${batch_size}", "${program}", "plain", "x${args}", "${args}"])
    assert render(config, {"k": 1}) == ["--bs=${batch_size}", "train.py", "plain", "x${args}", "--k=1"]


def test_envvar_inside_any_element() -> None:
    config = _config(
        [
            "${envvar:DATA}/train",
            "--n=${envvar:N}${envvar:N}",
            "${envvar:DATA}",
            "${envvar:UNSET_VAR}",
            "${envvar:lower}",
            "a${envvar:lower}",
        ]
    )
    argv = render(config, {}, environ={"DATA": "/d", "N": "3"})
    # As W&B does: an unset variable becomes its name; a lower-case name is no envvar macro, so
    # that element is an unknown macro when whole (dropped) and plain text otherwise.
    assert argv == ["/d/train", "--n=33", "/d", "UNSET_VAR", "a${envvar:lower}"]


def test_envvar_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWEEPQ_T", "v")
    assert render(_config(["${envvar:SWEEPQ_T}"]), {}) == ["v"]


def test_interpreter_can_be_chosen() -> None:
    assert _render("${interpreter}", interpreter="/venv/bin/python") == ["/venv/bin/python"]


def test_program_required_only_when_used() -> None:
    with pytest.raises(ConfigError, match=r"program: required: the command uses \$\{program\}"):
        render(_config(None, program=None), {"x": 1})
    assert render(_config(["python", "-m", "pkg", "${args}"], program=None), {"x": 1}) == [
        "python",
        "-m",
        "pkg",
        "--x=1",
    ]


def test_nested_groups_render_as_wandb_does() -> None:
    """W&B passes each top-level key; a group's value is its dict, rendered with str()."""
    params = {"opt": {"lr": 0.1, "name": "adam"}, "seed": 0}
    assert _render("${args}", params) == ["--opt={'lr': 0.1, 'name': 'adam'}", "--seed=0"]
    assert _render("${args_json}", params) == ['{"opt": {"lr": 0.1, "name": "adam"}, "seed": 0}']
    assert _render("${args_override_hydra}", params) == ["++opt={'lr': 0.1, 'name': 'adam'}", "++seed=0"]


def test_argv_is_a_list_never_a_shell_string() -> None:
    argv = _render("${args}", {"s": "a; rm -rf / $(x) 'q'"})
    assert argv == ["--s=a; rm -rf / $(x) 'q'"]
