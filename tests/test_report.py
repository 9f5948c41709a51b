"""Status tables, the report's content and the small commands' messages, over a real sweep run in
notebook mode (tests/reportsweep.py) and the real CLI as a subprocess."""

from __future__ import annotations

import json
import re
from pathlib import Path

import psutil
import redis

from sweepq.report.data import load_view
from sweepq.report.payload import build_payload
from sweepq.store import Store
from tests.helpers import base_env, cli
from tests.reportsweep import make_sweep

LABELS = ("depth", "opt.lr", "opt.name", "width")


def _cli80(*args: str, cwd: Path | None = None) -> str:
    out = cli(*args, cwd=cwd, env=base_env(COLUMNS="80"))
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_tables_show_every_parameter_and_the_metric_at_80_columns(r: redis.Redis, redis_url: str) -> None:
    sid = make_sweep(redis_url)
    view = load_view(Store(r), sid)
    best = view.best
    assert best is not None
    for args in (("status", sid), ("trials", sid), ("status",)):
        text = _cli80(*args, "--redis", redis_url)
        assert "…" not in text, text
        assert max(len(line) for line in text.splitlines()) <= 80
    status = _cli80("status", sid, "--redis", redis_url)
    assert f"best loss={best.best:.6g} (trial {best.number})" in " ".join(status.split())
    trials = _cli80("trials", sid, "--redis", redis_url)
    assert "best loss" in " ".join(trials.split())
    for label in LABELS:  # nothing cut, nothing left out; the constant `epochs` is not a column
        assert label in trials
    assert "epochs" not in trials
    assert all(re.search(rf"^\s+{t.number}\b", trials, re.M) for t in view.trials)
    wide = cli("trials", sid, "--redis", redis_url, env=base_env(COLUMNS="200"))
    header = next(line for line in wide.stdout.splitlines() if "opt.lr" in line)
    assert all(label in header for label in LABELS)  # wide enough: a column each


def test_report_payload_is_what_a_wandb_user_expects(r: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    sid = make_sweep(redis_url)
    store = Store(r)
    payload = build_payload(store, sid)
    dims = {d["label"]: d for d in payload["figures"]["parcoords"]["data"][0]["dimensions"]}
    assert set(dims) == {"depth", "opt.lr (log)", "opt.name", "width", "loss"}  # constant left out
    lr = dims["opt.lr (log)"]
    assert all(-4.01 <= v <= -0.99 for v in lr["values"]) and lr["ticktext"]  # log10 values, real ticks
    assert dims["width"]["ticktext"] == ["8", "16", "32"] and dims["opt.name"]["ticktext"] == ["adam", "sgd"]
    line = payload["figures"]["parcoords"]["data"][0]["line"]
    losses = dims["loss"]["values"]
    assert min(losses) <= line["cmin"] < line["cmax"] <= max(losses)  # clipped to quantiles
    imp = payload["figures"]["importance"]["data"]
    assert [t["name"] for t in imp] == ["importance", "correlation"]
    assert set(imp[0]["y"]) <= set(LABELS) and "opt.lr" in imp[0]["y"][-2:]  # among the two that matter
    corr = dict(zip(imp[1]["y"], imp[1]["text"], strict=True))
    assert corr["opt.name"].startswith("n/a") and re.match(r"[+-]\d\.\d\d", corr["depth"])
    traces = payload["figures"]["curves"]["data"]
    pruned = [t for t in store.trials(sid) if t.state == "pruned"]
    assert pruned, "the fixture sweep should prune"
    for t in pruned:
        line_trace = next(x for x in traces if x.get("name") == f"{t.number} (pruned)")
        assert line_trace["line"]["dash"] == "dot" and line_trace["x"][0] == 0
        assert any(x.get("marker", {}).get("symbol") == "x" and x["legendgroup"] == str(t.number) for x in traces)
    colours = {x["line"]["color"] for x in traces if x.get("mode") == "lines"}
    assert len(colours) >= min(12, 20) - 1  # a colour per trial
    rows = payload["trials"]
    assert {k for k in rows[0]} >= {"params", "state", "best", "steps", "duration", "worker", "reason"}
    assert any(row["reason"].startswith("hyperband") for row in rows if row["state"] == "pruned")
    assert payload["best"]["trial"] == load_view(store, sid).best.number  # type: ignore[union-attr]
    assert "log_uniform_values" in payload["config"]

    out = tmp_path / "r.html"
    done = cli("report", sid, "--redis", redis_url, "-o", str(out))
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    from sweepq.report.page import plotly_js

    assert plotly_js() in page  # plotly.js inlined; nothing else is loaded from anywhere
    rest = page.replace(plotly_js(), "")
    assert "<script src=" not in rest and "http://" not in rest and "https://" not in rest
    assert json.dumps("opt.lr (log)") in page


def test_read_only_commands_never_start_a_server(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = base_env(SWEEPQ_HOME=str(home))
    before = {p.pid for p in psutil.process_iter(["name"]) if "valkey" in (p.info["name"] or "")}
    for args in (
        ("status",),
        ("status", "abc"),
        ("trials", "abc"),
        ("logs", "abc", "1"),
        ("report", "abc"),
        ("kill", "abc", "1"),
        ("stop", "abc"),
        ("rerun", "abc", "--failed"),
        ("dashboard", "abc"),
    ):
        out = cli(*args, cwd=tmp_path, env=env)
        assert out.returncode == 2, (args, out.stderr)
        assert "no sweepq server is running" in out.stderr and "sweepq plan sweep.yaml" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
    after = {p.pid for p in psutil.process_iter(["name"]) if "valkey" in (p.info["name"] or "")}
    assert not (after - before) and not (home / "server.json").exists()  # (others may stop theirs)


def test_unknown_sweep_and_trial_messages(r: redis.Redis, redis_url: str) -> None:
    for args in (("logs", "nosuch", "1"), ("kill", "nosuch", "1"), ("status", "nosuch"), ("report", "nosuch")):
        out = cli(*args, "--redis", redis_url)
        assert out.returncode == 2 and "no sweep 'nosuch'" in out.stderr, (args, out.stderr)
    sid = make_sweep(redis_url, count=2)
    for args in (("logs", sid, "99"), ("kill", sid, "99")):
        out = cli(*args, "--redis", redis_url)
        assert out.returncode == 2 and f"no trial 99 in sweep {sid}" in out.stderr, (args, out.stderr)
    rerun = cli("rerun", sid, "0", "--redis", redis_url)
    assert rerun.returncode == 0, rerun.stderr
    assert "queued again: 0" in rerun.stderr and f"sweepq plan --resume {sid}" in rerun.stderr


def test_loguniform_suggests_log_uniform_values(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("method: random\nparameters:\n  lr: {distribution: loguniform, min: 0.0001, max: 0.1}\n")
    out = cli("validate", str(path))
    assert out.returncode == 2 and "did you mean log_uniform_values?" in out.stderr, out.stderr


def test_status_watch_ends_with_the_sweep(r: redis.Redis, redis_url: str) -> None:
    sid = make_sweep(redis_url, count=3)
    Store(r).set_sweep_state(sid, "finished", allowed=["running"], reason="all trials done")
    out = cli("status", sid, "--watch", "--interval", "0.2", "--redis", redis_url, env=base_env(COLUMNS="100"))
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    assert "best loss" in text and "all trials done" in text and "opt.lr" in text
