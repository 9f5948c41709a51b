"""Status tables and the HTML report over a real sweep run in notebook mode."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import redis

import sweepq
from sweepq.store import Store

CONFIG = {
    "method": "random",
    "metric": {"name": "loss", "goal": "minimize"},
    "run_cap": 6,
    "parameters": {
        "opt": {"parameters": {"lr": {"min": 0.001, "max": 0.1}, "name": {"values": ["a", "b"]}}},
        "width": {"values": [8, 16]},
    },
}


def _train() -> None:
    run = sweepq.init()
    for i in range(3):
        sweepq.log({"loss": run.config.opt.lr * 10 + 1.0 / (i + 1) + run.config.width / 100})


def _cli(redis_url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sweepq", *args, "--redis", redis_url],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


def test_status_trials_and_html_report(r: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    sid = sweepq.sweep(CONFIG, redis=redis_url)
    assert sweepq.agent(sid, function=_train, count=10, redis=redis_url) == 6
    trials = Store(r).trials(sid)
    best = min(trials, key=lambda t: t.best or 0.0)

    status = _cli(redis_url, "status", sid, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert f"best loss={best.best:.6g} (trial {best.number})" in " ".join(status.stdout.split())

    listing = _cli(redis_url, "status", cwd=tmp_path)
    assert sid[:4] in listing.stdout

    out = tmp_path / "r.html"
    rep = _cli(redis_url, "report", sid, "-o", str(out), cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    page = out.read_text()
    assert "parcoords" in page and "opt.lr" in page and "parameter importance" in page
    for t in trials:  # one history line per trial
        assert f'"name":"{t.number} (finished)"' in page

    missing = _cli(redis_url, "status", "nosuchid", cwd=tmp_path)
    assert missing.returncode == 2 and "no sweep 'nosuchid'" in missing.stderr
    assert "Traceback" not in missing.stderr
