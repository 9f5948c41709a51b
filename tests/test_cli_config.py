"""`sweepq validate` / `sweepq preview`: exit 2 with the key path for every bad config, and the
W&B docs examples and a nested config validated and previewed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click.testing
import pytest
import typer

from sweepq.cli import app

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "configs"
EXAMPLES = ROOT / "examples"
BAD = sorted(p for p in CORPUS.iterdir() if p.suffix in (".yaml", ".json"))
# Built once: typer's CliRunner rebuilds the whole click command on every invoke (~25 ms).
_COMMAND = typer.main.get_command(app)


def _invoke(*args: str) -> click.testing.Result:
    return click.testing.CliRunner().invoke(_COMMAND, list(args))


def _expected(path: Path) -> list[str]:
    """`# expect:` lines at the top of a YAML file, or a `.expect` sidecar for JSON."""
    if path.suffix == ".json":
        return path.with_name(path.name + ".expect").read_text().splitlines()
    lines = path.read_text().splitlines()
    return [line.split(":", 1)[1].strip() for line in lines if line.startswith("# expect:")]


def test_corpus_is_large() -> None:
    assert len(BAD) >= 60


# preview loads through the same path as validate: a sample of the corpus is enough there.
CASES = [("validate", p) for p in BAD] + [("preview", p) for p in BAD[::8]]


@pytest.mark.parametrize(("command", "path"), CASES, ids=lambda x: x.name if isinstance(x, Path) else x)
def test_invalid_config_exits_2_with_key_path(command: str, path: Path) -> None:
    expected = _expected(path)
    assert expected, f"{path.name} names no expected message"
    result = _invoke(command, str(path))
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    for text in expected:
        assert text in result.stderr, f"{text!r} not in:\n{result.stderr}"
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["wandb-sweepdemo.yaml", "wandb-q-log-uniform.yaml", "nested.yaml"])
def test_examples_validate(name: str) -> None:
    result = _invoke("validate", str(EXAMPLES / name), "--json")
    assert result.exit_code == 0, result.output
    normalized = json.loads(result.stdout)
    assert all("distribution" in spec or "parameters" in spec for spec in normalized["parameters"].values())


def _preview(path: Path, *args: str) -> list[dict]:
    result = _invoke("preview", str(path), *args)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_preview_sweepdemo_bayes() -> None:
    items = _preview(EXAMPLES / "wandb-sweepdemo.yaml", "-n", "5", "--seed", "3")
    assert len(items) == 5
    for item in items:
        p = item["params"]
        assert 0.0001 <= p["learning_rate"] <= 0.1
        assert p["batch_size"] in (16, 32, 64) and p["optimizer"] in ("adam", "sgd")
        assert item["command"][:3] == ["/usr/bin/env", "python", "train.py"]
        assert f"--learning_rate={p['learning_rate']}" in item["command"]
    assert _preview(EXAMPLES / "wandb-sweepdemo.yaml", "-n", "5", "--seed", "3") == items
    assert _preview(EXAMPLES / "wandb-sweepdemo.yaml", "-n", "5", "--seed", "4") != items


def test_preview_q_log_uniform_random_defaults_to_10() -> None:
    items = _preview(EXAMPLES / "wandb-q-log-uniform.yaml")
    assert len(items) == 10
    for item in items:
        bs = item["params"]["batch_size"]
        assert type(bs) is int and bs % 8 == 0 and 32 <= bs <= 256
        assert item["params"]["epochs"] == 1
        assert 0 <= item["params"]["learning_rate"] <= 0.1


def test_preview_nested_grid_in_order() -> None:
    items = _preview(EXAMPLES / "nested.yaml")
    assert len(items) == 16
    keys = [
        (
            i["params"]["model"]["depth"],
            i["params"]["model"]["width"],
            i["params"]["optimizer"]["name"],
            i["params"]["optimizer"]["schedule"]["warmup"],
        )
        for i in items
    ]
    assert keys[:3] == [(2, 64, "adam", 0), (2, 64, "adam", 100), (2, 64, "sgd", 0)]
    assert len(set(keys)) == 16
    first = items[0]
    assert first["command"][:3] == ["/usr/bin/env", "python", "train.py"]
    assert json.loads(first["command"][3]) == first["params"]
    assert _preview(EXAMPLES / "nested.yaml", "-n", "2") == items[:2]


def test_preview_args_json_file_placeholder_and_function_mode(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "method: grid\nprogram: t.py\ncommand: ['${program}', '${args_json_file}']\nparameters: {a: {values: [1, 2]}}\n"
    )
    assert [i["command"] for i in _preview(path)] == [["t.py", "<args_json_file>"]] * 2
    # A file without `program` whose command runs ${program} is refused (it would fail every
    # trial on a worker); a dict in notebook mode may leave it out (tests/test_config.py).
    path.write_text("method: grid\nparameters: {a: {values: [1]}}\n")
    result = _invoke("preview", str(path))
    assert result.exit_code == 2
    assert "program: required: the default command runs ${program}" in result.stderr


def test_validate_prints_warnings_on_stderr(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("method: random\nprogram: t.py\nparameters:\n  lr: {distribution: log_uniform, min: -5, max: -1}\n")
    result = _invoke("validate", str(path))
    assert result.exit_code == 0
    assert "warning: parameters.lr: log_uniform" in result.stderr
    assert "use log_uniform_values" in result.stderr
    assert "distribution: log_uniform" in result.stdout


def test_real_process_stdin_and_exit_code() -> None:
    """The installed entry point: stdin config, clean message, exit 2, no traceback."""
    bad = subprocess.run(
        [sys.executable, "-m", "sweepq", "validate", "-"],
        input="method: grid\nprogram: t.py\nparameters: {}\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == "parameters: must name at least one parameter"
    good = subprocess.run(
        [sys.executable, "-m", "sweepq", "preview", "-", "-n", "1"],
        input=(EXAMPLES / "wandb-sweepdemo.yaml").read_text(),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["command"][2] == "train.py"


@pytest.mark.parametrize("name", ["wandb-sweepdemo.yaml", "wandb-q-log-uniform.yaml", "nested.yaml"])
def test_validate_output_loads_back_to_the_same_config(name: str, tmp_path: Path) -> None:
    from sweepq.config import load

    out = tmp_path / "normalized.yaml"
    out.write_text(_invoke("validate", str(EXAMPLES / name)).stdout)
    assert load(out) == load(EXAMPLES / name)


def test_validate_output_quotes_strings_that_look_like_floats(tmp_path: Path) -> None:
    from sweepq.config import load

    src = tmp_path / "s.yaml"
    src.write_text("method: grid\nprogram: t.py\nparameters:\n  s: {values: ['1e-5', 1e-5, '3']}\n")
    out = tmp_path / "out.yaml"
    out.write_text(_invoke("validate", str(src)).stdout)
    assert [p["s"] for p in load(out).space.grid()] == ["1e-5", 1e-5, "3"]


@pytest.mark.parametrize(
    ("argv", "code"),
    [(["validate", "CFG"], 0), (["validate", "CFG", "--json"], 0), (["preview", "CFG", "-n", "2"], 0), (["plan"], 2)],
)
def test_the_entry_point_skips_teardown_but_runs_exit_handlers_and_flushes(argv: list[str], code: int) -> None:
    """`sweepq` ends without the interpreter's module teardown (0.1 s after `plan`), but as
    `sys.exit` would otherwise: exit handlers run, buffered output is all written (here a
    pipe, block-buffered), and the exit code is the command's."""
    cfg = str(EXAMPLES / "wandb-sweepdemo.yaml")
    script = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('HANDLER RAN', file=sys.stderr))\n"
        f"sys.argv = ['sweepq', *{[cfg if a == 'CFG' else a for a in argv]!r}]\n"
        "from sweepq.fastcli import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60, env=_no_pyunbuffered()
    )
    assert done.returncode == code, done.stderr
    assert done.stderr.rstrip().endswith("HANDLER RAN")
    from sweepq import config as cfgmod

    loaded = cfgmod.load(cfg)
    if argv == ["validate", "CFG"]:
        assert done.stdout == cfgmod.to_yaml(loaded).rstrip() + "\n"
    elif argv == ["validate", "CFG", "--json"]:
        assert json.loads(done.stdout) == json.loads(json.dumps(loaded.to_dict()))
    elif argv[0] == "preview":
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        assert len(lines) == 2 and all(line["command"][2] == "train.py" for line in lines)


def _no_pyunbuffered() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
