"""The README's Quickstart, run literally: its ```bash blocks, in order, in one bash with
`set -euo pipefail`, in a copy of the repository (tracked and untracked-but-not-ignored files),
in the fresh virtualenv the Quickstart itself creates. Minutes long (a pip install and a 20-trial
sweep): marked slow, CI runs it with `pytest -m slow`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT, kill_by_env


def quickstart_blocks(readme: str) -> list[str]:
    section = readme.split("\n## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, re.S)


def test_quickstart_has_commands() -> None:
    blocks = quickstart_blocks((ROOT / "README.md").read_text())
    assert len(blocks) >= 2 and "sweepq plan" in blocks[0] and "sweepq report" in blocks[-1]


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_readme_quickstart_runs_as_written(tmp_path: Path) -> None:
    copy = tmp_path / "sweepq"
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        src = ROOT / name
        if src.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, copy / name)
    script = "set -euo pipefail\n" + "\n".join(quickstart_blocks((ROOT / "README.md").read_text()))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWEEPQ_", "VIRTUAL_ENV", "PYTHON"))}
    bin_dir = str(Path(os.environ.get("VIRTUAL_ENV", "/nonexistent")) / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != bin_dir)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["SWEEPQ_README_TEST"] = str(tmp_path)  # a marker for the safety net below
    try:
        done = subprocess.run(
            ["bash", "-c", script], cwd=copy, env=env, capture_output=True, text=True, timeout=1100, check=False
        )
        assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-5000:]}"
        quick = copy / "examples" / "quickstart"
        reports = list(quick.glob("sweep-*.html"))
        assert len(reports) == 1 and reports[0].stat().st_size > 3_000_000
        assert "finished: all trials done" in done.stderr and "stopped" in done.stderr
    finally:
        kill_by_env("SWEEPQ_README_TEST", str(tmp_path))
