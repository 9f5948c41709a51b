"""`import sweepq as wandb` outside any sweep, the W&B-compatible config rules, and the pieces
of the zero-change bridge that need no server: W&B's own parameter-file reader, the hook's cost
for programs that never import wandb, the default WANDB_MODE."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import sweepq
from sweepq import sdk, wandb_bridge
from sweepq.config import parse

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _no_run():
    sdk.finish_current()
    yield
    sdk.finish_current()


def test_sweepq_config_is_the_run_config_even_after_the_parser_module_is_imported():
    import sweepq.config  # the parser: the import system sets sweepq.config = <module> here
    from sweepq import config as old_style  # older internal spelling still finds the parser's names

    assert old_style.load is sweepq.config.load  # falls back to the parser for non-keys
    run = sweepq.init(config={"lr": 0.1, "load": "mine"})
    assert sweepq.config.lr == 0.1 and sweepq.config["lr"] == 0.1
    assert sweepq.config.load == "mine"  # a config key wins over the module's name
    assert sweepq.run is run and "lr" in sweepq.config
    sweepq.config.epochs = 3
    assert run.config.epochs == 3
    sweepq.summary["best"] = 1.5
    assert run.summary["best"] == 1.5 and sweepq.summary.best == 1.5


class _Args:
    def __init__(self) -> None:
        self.lr, self.opt, self._private = 0.1, {"name": "sgd"}, 1


@pytest.mark.parametrize(
    "source",
    [{"lr": 0.1, "opt": {"name": "sgd"}}, argparse.Namespace(lr=0.1, opt={"name": "sgd"}), _Args()],
    ids=["dict", "namespace", "object"],
)
def test_init_takes_what_wandb_init_takes(source):
    run = sweepq.init(config=source)
    assert run.config.as_dict() == {"lr": 0.1, "opt": {"name": "sgd"}}
    assert run.config.opt.name == "sgd"
    assert json.loads(json.dumps(dict(run.config))) == {"lr": 0.1, "opt": {"name": "sgd"}}


def test_init_takes_a_yaml_path_in_wandb_config_defaults_form(tmp_path):
    path = tmp_path / "config-defaults.yaml"
    path.write_text("wandb_version: 1\nlr:\n  desc: learning rate\n  value: 0.2\nepochs: 4\n")
    run = sweepq.init(config=str(path), config_exclude_keys=["epochs"])
    assert run.config.as_dict() == {"lr": 0.2}


def test_run_attributes_and_helpers_scripts_use(tmp_path):
    run = sweepq.init(project="demo", entity="me", config={"a": 1}, dir=str(tmp_path))
    assert (run.project, run.entity) == ("demo", "me")
    assert os.path.isdir(run.dir) and run.dir.startswith(str(tmp_path))
    assert run.url is None and run.get_url() is None and run.get_sweep_url() is None
    run.config.setdefaults({"a": 2, "b": 3})
    assert run.config.as_dict() == {"a": 1, "b": 3}
    sweepq.define_metric("val/*", summary="min,max")
    table = sweepq.Table(columns=["x", "y"], data=[[1, 2]])
    table.add_data(3, 4)
    assert table.get_column("y") == [2, 4]
    for loss in (0.5, 0.2, 0.9):
        sweepq.log({"val/loss": loss, "img": sweepq.Image(b""), "chart": sweepq.plot.line(table, "x", "y")})
    assert run.step == 3
    assert run.summary["val/loss"] == {"min": 0.2, "max": 0.9}
    assert run.history[0]["img"] == "<Image>" and run.history[0]["chart"] == "<Chart>"
    art = sweepq.Artifact("model", type="model")
    art.add_file(__file__)
    assert run.log_artifact(art) is art and sweepq.use_artifact("me/demo/model:v0").name == "model:v0"
    assert sweepq.save("*.pt") and sweepq.login() and sweepq.watch(object()) is None
    assert sweepq.Settings(start_method="thread").start_method == "thread"
    sweepq.alert(title="t", text="x")
    sweepq.termlog("hello")
    assert sweepq.Histogram([1, 2]).args == ([1, 2],)
    sweepq.finish()
    assert sweepq.run is None


def test_log_follows_wandbs_step_and_commit_rules():
    run = sweepq.init()
    run.log({"a": 1}, commit=False)
    run.log({"b": 2})  # commits the merged row at step 0
    run.log({"c": 3}, step=5)  # explicit step: pending until a larger step or commit
    run.log({"d": 4}, step=5)
    run.log({"e": 5}, step=6)  # commits step 5
    run.log({"f": 6}, step=2)  # below the current step: ignored, as in wandb
    run.finish()
    assert run.history == [{"a": 1, "b": 2}, {"c": 3, "d": 4}, {"e": 5}]


def test_wandb_reads_the_parameter_file_we_write(tmp_path):
    pytest.importorskip("wandb")
    from wandb.sdk.lib import config_util

    path = tmp_path / "params.yaml"
    params = {"lr": 0.1, "opt": {"name": "adam", "beta": 0.9}, "layers": [1, 2], "tag": "1e-4"}
    wandb_bridge.write_param_file(path, params)
    assert config_util.dict_from_config_file(str(path)) == params


def test_default_wandb_mode(tmp_path):
    home = {"HOME": str(tmp_path)}
    assert wandb_bridge.wandb_mode(home) == "disabled"  # no account: no prompt, no network
    assert wandb_bridge.wandb_mode({**home, "WANDB_MODE": "offline"}) is None  # the user's choice stands
    assert wandb_bridge.wandb_mode({**home, "WANDB_API_KEY": "k" * 40}) is None  # W&B as the dashboard
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert wandb_bridge.wandb_mode(home) is None
    assert wandb_bridge.wandb_mode({**home, "WANDB_BASE_URL": "https://wandb.example.com"}) == "disabled"


def test_a_program_that_does_not_import_wandb_loads_nothing_of_ours():
    ours = ("sweepq", "yaml", "redis", "wandb", "typing")
    code = f"import sys; print(sorted(m for m in sys.modules if m.split('.')[0] in {ours!r}))"
    env = {**os.environ, "PYTHONPATH": str(wandb_bridge.HOOK_DIR), "SWEEPQ_SWEEP_ID": "x", "SWEEPQ_TRIAL": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    plain = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == plain.stdout, (out.stdout, plain.stdout)
    finder = subprocess.run(
        [sys.executable, "-c", "import sys; print([type(f).__name__ for f in sys.meta_path][0])"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert finder.stdout.strip() == "_WandbFinder"


def test_the_hook_runs_the_programs_own_sitecustomize(tmp_path):
    (tmp_path / "sitecustomize.py").write_text("import builtins\nbuiltins.OWN_SITECUSTOMIZE = True\n")
    env = {**os.environ, "PYTHONPATH": f"{wandb_bridge.HOOK_DIR}{os.pathsep}{tmp_path}", "SWEEPQ_SWEEP_ID": "x"}
    out = subprocess.run(
        [sys.executable, "-c", "print(OWN_SITECUSTOMIZE)"], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "True"


def test_real_configs_w_and_b_accepts():
    base = {"method": "random", "metric": {"name": "loss"}, "parameters": {"x": {"values": [1, 2]}}}
    cfg = parse({**base, "program": "train.py", "job": "me/proj/job:latest", "image_uri": "img:1"})
    assert any(w.startswith("job:") for w in cfg.warnings) and any(w.startswith("image_uri:") for w in cfg.warnings)
    assert "job" not in cfg.to_dict()
    cfg = parse({**base, "early_terminate": {"type": "hyperband", "min_iter": 3, "s": 2}})
    assert cfg.early_terminate is not None and cfg.early_terminate.s is None
    from sweepq.stopping import Rule

    assert Rule.from_config(cfg.early_terminate).bands[:3] == (3, 9, 27)
    cfg = parse({**base, "command": ["python", "train.py", "--epochs", 10, 0.5, True]})
    assert cfg.command == ("python", "train.py", "--epochs", "10", "0.5", "True")


def test_local_workers_get_a_queue_of_their_sweep(monkeypatch):
    from sweepq.launch import PlanOptions, _sweep_queue

    monkeypatch.delenv("SWEEPQ_REDIS_URL", raising=False)
    sid, queue = _sweep_queue(PlanOptions())
    assert sid and queue == f"sweepq-{sid}"
    assert _sweep_queue(PlanOptions(queue="sweepq")) == (None, "sweepq")  # asked to share
    assert _sweep_queue(PlanOptions(redis="redis://h/0")) == (None, "sweepq")  # remote workers listen there
