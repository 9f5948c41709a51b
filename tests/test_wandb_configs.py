"""Sweep configs in the shapes W&B users publish (tests/configs_wandb): every one validates
(W&B accepts them all), and the command rendered for a sampled trial follows W&B's agent:
`${env}` -> /usr/bin/env, `${interpreter}` -> python, `${program}`, `${args}` -> `--name=value`,
`${args_no_hyphens}` -> `name=value`, `${args_json_file}` -> a path, bare numbers str()'d."""

from __future__ import annotations

from pathlib import Path

import pytest

from sweepq.command import render
from sweepq.config import load
from sweepq.preview import preview

CORPUS = sorted((Path(__file__).resolve().parent / "configs_wandb").glob("*.yaml"))


def test_corpus_is_there():
    assert len(CORPUS) >= 10


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_real_config_validates_and_renders_like_wandbs_agent(path):
    # A notebook's dict is run by agent(function=): it has no program (a file on the CLI must).
    cfg = load(path, require_program=not path.stem.startswith("notebook"))
    if cfg.program is None and "${program}" in cfg.command:
        assert cfg.space.to_dict()  # a notebook dict: wandb.agent(function=...) runs it, no command
        return
    (item,) = list(preview(cfg, n=1))
    params = item["params"] if "params" in item else item
    argv = render(cfg, params, args_json_file="/tmp/params.json")
    assert all(isinstance(part, str) for part in argv)
    command = list(cfg.command)
    if "${env}" in command:
        assert argv[command.index("${env}")] == "/usr/bin/env"
    if "${interpreter}" in command:
        assert argv[command.index("${interpreter}")] == "python"
    if "${program}" in command:
        assert cfg.program in argv
    if "${args}" in command:
        for name in params:
            assert any(part.startswith(f"--{name}=") for part in argv), (name, argv)
    if "${args_no_hyphens}" in command:
        for name in params:
            assert any(part.startswith(f"{name}=") for part in argv), (name, argv)
    if "${args_json_file}" in command:
        assert "/tmp/params.json" in argv


def test_the_three_configs_w_and_b_accepts_that_sweepq_refused():
    job = load(next(p for p in CORPUS if p.stem == "job-beside-program"))
    assert any(w.startswith("job:") for w in job.warnings)
    hb = load(next(p for p in CORPUS if p.stem == "hyperband-min-iter-and-s"))
    assert hb.early_terminate is not None and hb.early_terminate.s is None
    numbers = load(next(p for p in CORPUS if p.stem == "command-numbers"))
    assert numbers.command[3:7] == ("--epochs", "10", "--ratio", "0.5")
