"""Hostile configs: refused fast with one clear message, or validated and then previewed.

Each input here once took minutes, gigabytes or a traceback (issue 11, "Hostile input"); the
inputs the fuzzer (tests/test_fuzz_config.py) found are kept here as named regressions.
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sweepq import bounded
from sweepq.command import render
from sweepq.config import MAX_GRID, SweepConfig, load, parse
from sweepq.errors import ConfigError
from sweepq.preview import preview

ROOT = Path(__file__).resolve().parent.parent
N = 10_000

BOMB = """method: random
program: t.py
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
parameters: {x: {values: *i}}
"""
# Merge keys copy the merged pairs at construction: the same bomb through `<<`.
MERGE_BOMB = "method: random\nprogram: t.py\na0: &a0 {k: 1}\n" + "".join(
    f"a{i}: &a{i} {{<<: [{', '.join([f'*a{i - 1}'] * 9)}]}}\n" for i in range(1, 10)
)
HEAD = "method: random\nprogram: t.py\nparameters:\n"
HOSTILE = {
    "alias-bomb": BOMB,
    "merge-bomb": MERGE_BOMB,
    "deep-list": HEAD + "  x:\n    value: " + "[" * N + "]" * N + "\n",
    "deep-dict": HEAD + "  x:\n    value: " + "{a: " * N + "1" + "}" * N + "\n",
    "deep-groups": "method: random\nprogram: t.py\nparameters: "
    + "{g: {parameters: " * N
    + "{x: {value: 1}}"
    + "}}" * N
    + "\n",
    "deep-block": HEAD + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(2000)) + "  " * 2001 + "v: 1\n",
    "5000-digit-int": HEAD + "  x: {min: 0, max: 1" + "0" * 5000 + "}\n",
    "long-sexagesimal": HEAD + "  x: {value: " + ":".join(["59"] * 3000) + "}\n",
    "huge-file": HEAD + "  x: {values: [" + ",".join(["0"] * 200_000) + "]}\n",
}


def _measure(fn: Callable[[], Any]) -> tuple[float, float]:
    """Seconds and peak MB (tracemalloc) of one call."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        fn()
    finally:
        elapsed = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return elapsed, peak / 2**20


def _refused(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load(path)
    return [str(v) for v in err.value.violations]


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_files_are_refused_fast_in_little_memory(name: str, tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(HOSTILE[name])
    errors: list[str] = []
    seconds, peak_mb = _measure(lambda: errors.extend(_refused(path)))
    assert len(errors) == 1 and errors[0].startswith(f"{path}: "), errors
    assert seconds < 5, seconds
    assert peak_mb < 64, peak_mb


def test_messages_name_the_limit(tmp_path: Path) -> None:
    def one(name: str) -> str:
        path = tmp_path / f"{name}.yaml"
        path.write_text(HOSTILE[name])
        (msg,) = _refused(path)
        return msg.split(": ", 1)[1]

    assert one("alias-bomb") == "line 8, column 4: more than 100,000 values once YAML aliases are expanded"
    # libyaml (when PyYAML has it) stops at 1000 levels itself; ours stops at 64.
    assert one("deep-list").endswith((": nested more than 64 levels deep", ": exceeded maximum nesting depth"))
    assert one("deep-groups").endswith(": nested more than 64 levels deep")
    assert one("5000-digit-int").endswith("integer out of range: 10000000000000000000... has 5,001 characters")
    assert one("huge-file") == f"the config is longer than {bounded.MAX_BYTES:,} characters, the most sweepq reads"


def test_deep_json_and_json_big_ints(tmp_path: Path) -> None:
    deep = tmp_path / "d.json"
    deep.write_text('{"method": "random", "parameters": {"x": {"value": ' + "[" * N + "]" * N + "}}}")
    assert _refused(deep) == [f"{deep}: nested more than 64 levels deep"]
    shallow_but_deep = tmp_path / "s.json"  # under the C parser's own limit: our walk refuses it
    shallow_but_deep.write_text(
        '{"method": "random", "program": "t.py", "parameters": {"x": {"value": ' + "[" * 100 + "]" * 100 + "}}}"
    )
    (msg,) = _refused(shallow_but_deep)
    assert msg.endswith(": nested more than 64 levels deep")
    big = tmp_path / "b.json"
    big.write_text('{"method": "random", "parameters": {"x": {"min": 0, "max": 1' + "0" * 5000 + "}}}")
    assert _refused(big) == [f"{big}: integer out of range: 10000000000000000000... has 5,001 digits"]


def test_limits_hold_for_dicts_from_python_too() -> None:
    loop: dict[str, Any] = {"value": 1}
    loop["self"] = loop
    with pytest.raises(ConfigError, match="nested more than 64 levels deep"):
        parse({"method": "random", "parameters": {"x": loop}})
    with pytest.raises(ConfigError, match=r"parameters\.x\.max: integer out of range: must fit in 64 bits"):
        parse({"method": "random", "parameters": {"x": {"min": 0, "max": 10**5000}}})
    wide = {"method": "random", "parameters": {"x": {"values": list(range(bounded.MAX_NODES + 1))}}}
    with pytest.raises(ConfigError, match="more than 100,000 values in the config"):
        parse(wide)
    with pytest.raises(ConfigError, match=r"<int key>: "):
        parse({"method": "random", "parameters": {10**5000: {"value": 1}}})


def test_within_the_limits_is_fine(tmp_path: Path) -> None:
    """The limits sit far above real configs: 60 levels, 50k values, 2**63 - 1, aliases."""
    path = tmp_path / "ok.yaml"
    path.write_text(
        HEAD
        + "  big: {min: -9223372036854775808, max: 9223372036854775807}\n"
        + "  deep: {value: "
        + "[" * 58
        + "]" * 58
        + "}\n"
        + "  many: {values: &v ["
        + ",".join(map(str, range(20_000)))
        + "]}\n"
        + "  again: {values: *v}\n"
    )
    config = load(path)
    (item,) = preview(config, n=1)
    assert -(2**63) <= item["params"]["big"] <= 2**63 - 1
    assert item["params"]["many"] in range(20_000)


def test_a_file_without_program_is_refused_when_the_command_needs_it(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("method: random\nparameters: {x: {min: 0, max: 1}}\n")
    assert _refused(path) == ["program: required: the default command runs ${program} (or give a command without it)"]
    path.write_text("method: random\ncommand: [a, '${program}']\nparameters: {x: {min: 0, max: 1}}\n")
    assert _refused(path) == ["program: required: the command runs ${program} (or give a command without it)"]
    path.write_text("method: random\ncommand: [./train.sh, '${args}']\nparameters: {x: {min: 0, max: 1}}\n")
    config = load(path)
    (item,) = preview(config, n=1)
    assert item["command"][0] == "./train.sh"
    # A dict is notebook mode (sweepq.sweep + sweepq.agent(function=...)): no program needed,
    # unless the caller asks.
    data = {"method": "random", "parameters": {"x": {"min": 0, "max": 1}}}
    assert load(data).program is None
    with pytest.raises(ConfigError, match="program: required"):
        load(data, require_program=True)


# Every distribution at the edges of the floats: validated and previewed (finite values), or
# refused with a message. Each case once crashed preview or printed Infinity.
EXTREMES: list[dict[str, Any]] = [
    {"distribution": "q_log_normal", "mu": 2**63 - 1, "q": 1},
    {"distribution": "q_log_normal", "mu": 2**63 - 1},
    {"distribution": "log_normal", "mu": 700, "sigma": 1e308},
    {"distribution": "log_normal", "mu": -1e308, "sigma": 1e308},
    {"distribution": "normal", "mu": 1e308, "sigma": 1e308},
    {"distribution": "q_normal", "mu": -1e308, "sigma": 1e308, "q": 1},
    {"distribution": "q_normal", "mu": 0, "sigma": 1, "q": 1e-320},
    {"distribution": "uniform", "min": -1e308, "max": 1e308},
    {"distribution": "uniform", "min": -1.7976931348623157e308, "max": 1.7976931348623157e308},
    {"distribution": "q_uniform", "min": -1e308, "max": 1e308, "q": 1e-300},
    {"distribution": "q_uniform", "min": -1e308, "max": 1e308, "q": 1},
    {"distribution": "q_uniform", "min": 0, "max": 1, "q": 1e308},
    {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0},
    {"distribution": "log_uniform_values", "min": 5e-324, "max": 1.7976931348623157e308},
    {"distribution": "q_log_uniform_values", "min": 1e-300, "max": 1e308, "q": 1e-300},
    {"distribution": "inv_log_uniform_values", "min": 5e-324, "max": 1e308},
    {"distribution": "log_uniform", "min": -709, "max": 709},
    {"distribution": "q_log_uniform", "min": 700, "max": 709, "q": 1},
    {"distribution": "inv_log_uniform", "min": -709, "max": 709},
    {"distribution": "int_uniform", "min": -(2**63), "max": 2**63 - 1},
    {"distribution": "beta", "a": 1e308, "b": 1e308},
    {"distribution": "beta", "a": 5e-324, "b": 5e-324},
    {"distribution": "q_beta", "a": 1, "b": 1, "q": 1e-320},
    {"distribution": "categorical_w_probabilities", "values": [1, 2], "probabilities": [1e308, 1e308]},
    {"distribution": "normal", "mu": 0, "sigma": 2**63 - 1},
]


def _finite(x: Any) -> bool:
    return not isinstance(x, float) or math.isfinite(x)


@pytest.mark.parametrize("spec", EXTREMES, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items())[:60])
def test_extreme_distributions_validate_and_preview_or_are_refused(spec: dict[str, Any]) -> None:
    data = {"method": "random", "program": "t.py", "parameters": {"x": spec}}
    try:
        config = parse(data)
    except ConfigError as err:
        assert all(str(v).startswith("parameters.x") for v in err.violations), err
        return
    items = list(preview(config, n=200, seed=1))
    values = [item["params"]["x"] for item in items]
    assert all(_finite(v) for v in values), values
    json.dumps(items, allow_nan=False)
    assert render(config, items[0]["params"])[-1].startswith("--x=")


def test_huge_grids_are_refused_before_anything_is_built() -> None:
    many = {f"p{i}": {"values": list(range(10))} for i in range(40)}
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=rf"the grid has {10**40:,} points; sweepq runs at most {MAX_GRID:,}"):
        parse({"method": "grid", "parameters": many})
    tiny_q = {"x": {"distribution": "q_uniform", "min": -1e308, "max": 1e308, "q": 1e-300}}
    with pytest.raises(ConfigError, match="the grid has"):
        parse({"method": "grid", "parameters": tiny_q})
    assert time.perf_counter() - t0 < 2
    # At the limit the grid is a lazy stream: the first point comes at once.
    wide = parse({"method": "grid", "program": "t.py", "parameters": {"n": {"min": 1, "max": MAX_GRID}}})
    assert next(preview(wide))["params"] == {"n": 1}


def test_a_long_run_of_macro_openers_is_linear(tmp_path: Path) -> None:
    """The macro warning's regex was quadratic: 40 KB of `${` took 0.5 s, 256 KB minutes."""
    text = "${" * (bounded.MAX_BYTES // 2 - 100)
    config = {"method": "random", "program": "t.py", "command": [text], "parameters": {"x": {"value": 1}}}
    t0 = time.perf_counter()
    assert parse(config).command == (text,)
    assert time.perf_counter() - t0 < 2


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`sweepq ...` in a subprocess with 2 GB of address space: a regression cannot eat the box."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "sweepq", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        preexec_fn=limit,  # noqa: PLW1509 - only setrlimit, no threads yet
        env=env,
    )


@pytest.mark.parametrize("name", ["alias-bomb", "merge-bomb", "deep-list", "deep-groups", "5000-digit-int"])
def test_cli_refuses_hostile_files_with_exit_2(name: str, tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(HOSTILE[name])
    t0 = time.perf_counter()
    result = _cli("validate", str(path))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert time.perf_counter() - t0 < 30


def test_cli_on_binary_junk_and_stdin_bomb(tmp_path: Path) -> None:
    junk = tmp_path / "junk.yaml"
    junk.write_bytes(bytes(range(256)) * 4)
    result = _cli("validate", str(junk))
    assert result.returncode == 2 and "cannot read" in result.stderr and "Traceback" not in result.stderr
    result = _cli("preview", "-", stdin=BOMB)
    assert result.returncode == 2 and "aliases are expanded" in result.stderr and "Traceback" not in result.stderr


def test_sweep_config_type_is_what_validates() -> None:
    assert isinstance(load({"method": "random", "parameters": {"x": {"value": 1}}}), SweepConfig)


def test_found_lone_surrogates_validated_then_did_not_load_back(tmp_path: Path) -> None:
    """Found by the fuzzer: JSON's "\\ud800" validated, and `validate` printed YAML that
    libyaml refuses (and no program could get it as UTF-8 argv)."""
    path = tmp_path / "s.json"
    path.write_text('{"method": "grid", "program": "t.py", "parameters": {"x": {"values": ["\\ud800"]}}}')
    assert _refused(path) == ["parameters.x.values.0: not valid Unicode text (lone surrogate U+D800)"]
    with pytest.raises(ConfigError) as err:
        parse({"method": "random", "parameters": {"x": {"value": {"\ud800": 1}}}})
    assert str(err.value) == "parameters.x.value.\\ud800: not valid Unicode text (lone surrogate U+D800)"
    str(err.value).encode("utf-8")  # printable
