"""The trial program's channel to its runner: no Redis credential, its own attempt only."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import redis

from sweepq import config as cfgmod
from sweepq.channel import ChannelServer, SocketLink
from sweepq.model import Settings
from sweepq.runner import execute
from sweepq.store import Store

SDK_PROGRAM = """
import json, os, sys
import sweepq
run = sweepq.init(config={"x": -1})
for i in range(3):
    sweepq.log({"loss": run.config["x"] + i})
print(json.dumps({"redis": "redis" in sys.modules, "url": "SWEEPQ_REDIS_URL" in os.environ,
                  "x": run.config["x"], "stop": run.should_stop}))
"""


def _sweep(store: Store, tmp_path: Path, source: str) -> str:
    (tmp_path / "prog.py").write_text(source)
    cfg = cfgmod.load(
        {
            "program": "prog.py",
            "command": [sys.executable, "${program}"],
            "method": "random",
            "metric": {"name": "loss"},
            "parameters": {"x": {"min": 0.0, "max": 1.0}},
        }
    )
    sid = store.create_sweep(cfg, Settings(workdir=str(tmp_path), seed=1))
    store.create_trial(sid, 0, params={"x": 0.5}, encoded={"x": 0.5})
    return sid


def test_an_sdk_program_reports_through_its_runner_and_holds_no_redis_credential(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    store = Store(r)
    sid = _sweep(store, tmp_path, SDK_PROGRAM)
    assert execute(store, sid, 0, attempt=1, url=redis_url, worker="w") == "finished"
    report = json.loads(store.output(sid, 0)[-1])
    assert report == {"redis": False, "url": False, "x": 0.5, "stop": False}
    trial = store.trial(sid, 0)
    assert trial.uses_sdk and trial.history_len == 3 and trial.best == 0.5


def test_the_channel_serves_only_its_own_attempt(r: redis.Redis, tmp_path: Path) -> None:
    store = Store(r)
    sid = _sweep(store, tmp_path, "")
    trial = store.claim(sid, 0, attempt=1, worker="w", host="h").trial
    assert trial is not None
    path = str(tmp_path / "c.sock")
    with ChannelServer(store, store.sweep(sid), trial, path):
        link = SocketLink(path)
        assert link.attach().params == {"x": 0.5}
        assert link.log(0, {"loss": 0.3}, 0.3) == ("running", "")
        assert not link.annotate(state="finished", reason="forged")  # not the program's to set
        # A raw client gets a clear error for nonsense, and the server keeps serving.
        with socket.socket(socket.AF_UNIX) as raw:
            raw.connect(path)
            raw.sendall(b'{"op": "flushall"}\nnot json\n')
            replies = raw.makefile("rb")
            assert b"unknown request" in replies.readline() and b"error" in replies.readline()
        store.finish(sid, 0, attempt=1, outcome="requeue", reason="preempted")  # attempt 2 now
        assert link.log(1, {"loss": 0.1}, 0.1)[0] == "stale"
        assert link.must_stop()
    t = store.trial(sid, 0)
    assert t.attempt == 2 and t.history_len == 0 and t.state == "queued"
