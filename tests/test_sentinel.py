"""Sentinel for real (issue 11, item 4): `redis+sentinel://` for the planner, the workers (RQ's
own SENTINEL settings through `-c sweepq.rq_settings`), the runner and the trial's SDK, and a
failover in the middle of a sweep: primary + replica + 3 sentinels on loopback, kill -9 of the
primary.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis

from sweepq.errors import ConnectionFailed
from sweepq.planner import Planner
from sweepq.server import connect, fail_fast, parse_sentinel_url, rq_settings, url_of
from sweepq.store import Store
from tests.helpers import PY, ROOT, base_env, program_sweep, terminate, wait_for
from tests.sentinels import SentinelSet


@pytest.fixture()
def sentinels(tmp_path: Path) -> Any:
    s = SentinelSet(tmp_path / "redis")
    try:
        yield s
    finally:
        s.stop()


def test_sentinel_urls_parse_and_round_trip() -> None:
    spec = parse_sentinel_url("redis+sentinel://u:p%40ss@10.0.0.1:26379,[::1]:26380/mymaster/3?sentinel_password=x")
    assert spec.sentinels == (("10.0.0.1", 26379), ("::1", 26380))
    assert (spec.service, spec.db, spec.username, spec.password, spec.sentinel_password) == (
        "mymaster",
        3,
        "u",
        "p@ss",
        "x",
    )
    assert parse_sentinel_url(spec.url()) == spec
    assert parse_sentinel_url("redis+sentinel://h:1/svc").db == 0
    for bad in ("redis+sentinel://h:1/", "redis+sentinel://h/svc", "redis+sentinel://h:1/svc/x"):
        with pytest.raises(ValueError):
            parse_sentinel_url(bad)
    with pytest.raises(ConnectionFailed, match="must be host:port"):
        connect("redis+sentinel://nohost/svc")
    assert rq_settings("redis://h:1/0") == {"REDIS_URL": "redis://h:1/0"}
    sentinel = rq_settings("redis+sentinel://h:1,g:2/svc/2")["SENTINEL"]
    assert (sentinel["INSTANCES"], sentinel["MASTER_NAME"], sentinel["DB"]) == ([("h", 1), ("g", 2)], "svc", 2)


def test_a_sentinel_client_finds_the_primary_and_hands_on_the_sentinel_url(sentinels: SentinelSet) -> None:
    client = connect(sentinels.url)
    client.set("k", "v")
    assert sentinels.primary.client().get("k") == b"v"
    assert url_of(client) == sentinels.url  # what a trial gets: not localhost:6379
    assert fail_fast(client).get("k") == b"v"
    # RQ's own sentinel settings, as `rq worker -c sweepq.rq_settings` reads them
    from rq.cli.helpers import get_redis_from_config

    rq_client = get_redis_from_config(rq_settings(sentinels.url))
    assert url_of(rq_client) == sentinels.url


PROGRAM = """
import os, time, sweepq
run = sweepq.init()
for i in range(10):
    run.log({"loss": run.config.x / (i + 1)})
    time.sleep(0.1)
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "done"), "a") as f:
    # A program reports through its runner's channel: it is handed no Redis URL at all.
    url = os.environ.get("SWEEPQ_REDIS_URL", "none")
    f.write("%s %s %s\\n" % (os.environ["SWEEPQ_TRIAL"], os.environ["SWEEPQ_ATTEMPT"], url))
"""


def _worker(url: str, name: str, log: Path, worker_class: str = "sweepq.warm.WarmWorker") -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [
                PY,
                "-m",
                "rq.cli",
                "worker",
                "-c",
                "sweepq.rq_settings",
                "-w",
                worker_class,
                "--name",
                name,
                "sweepq",
            ],
            cwd=ROOT,
            env=base_env(SWEEPQ_REDIS_URL=url),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


@pytest.mark.slow
@pytest.mark.parametrize("worker_class", ["sweepq.warm.WarmWorker", "sweepq.worker.Worker"])
def test_kill9_of_the_primary_mid_sweep_fails_over_and_the_sweep_completes(
    sentinels: SentinelSet, tmp_path: Path, worker_class: str
) -> None:
    trials = 12
    url = sentinels.url
    store = Store(connect(url, long_running=True))
    sid = program_sweep(store, tmp_path, PROGRAM, run_cap=trials, heartbeat_timeout=10.0)
    planner = Planner(store, sid)
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(planner.run()), daemon=True)
    thread.start()
    started = time.time()
    procs = [
        _worker(url, f"sentinel-{i}-{time.monotonic_ns()}", tmp_path / f"worker-{i}.log", worker_class)
        for i in range(2)
    ]
    done = tmp_path / "done"
    try:
        wait_for(lambda: done.exists() and len(done.read_text().splitlines()) >= 3, timeout=90, what="3 trials")
        old = sentinels.primary_port()
        sentinels.primary.kill9()
        killed_at = time.monotonic()
        wait_for(lambda: sentinels.primary_port() != old, timeout=30, what="the sentinels to fail over")
        failover_s = time.monotonic() - killed_at
        thread.join(180)
        assert not thread.is_alive(), "the sweep did not complete after the failover"
    finally:
        for p in procs:
            terminate(p)
        logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in tmp_path.glob("worker-*.log"))
    print(f"failover took {failover_s:.1f}s")
    for t in store.trials(sid):  # when each trial ran, relative to the start: shows any stall
        print(
            t.number, t.state, t.attempt, round((t.started_at or 0) - started, 1), round((t.ended_at or 0) - started, 1)
        )
    assert result, "the planner raised\n" + logs
    final = result[0]
    assert final.state == "finished", logs
    records = store.trials(sid)
    assert len(records) == trials
    assert all(t.state == "finished" for t in records), [(t.number, t.state, t.reason) for t in records]
    lines = [line.split() for line in done.read_text().splitlines()]
    per_attempt = Counter((n, a) for n, a, _ in lines)
    assert max(per_attempt.values()) == 1, f"an attempt completed twice: {per_attempt}"
    assert {u for _, _, u in lines} == {"none"}, "a trial program was handed a Redis URL"
    assert all(t.history_len == 10 for t in records if (str(t.number), str(t.attempt)) in per_attempt)


def test_a_plain_url_still_works_for_rq_settings(redis_url: str, r: redis.Redis) -> None:
    """`-c sweepq.rq_settings` with a plain URL is the same as `--url` (one way to start workers)."""
    out = subprocess.run(
        [PY, "-c", "import sweepq.rq_settings as s; print(s.REDIS_URL)"],
        env=base_env(SWEEPQ_REDIS_URL=redis_url),
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert out.stdout.strip() == redis_url
    assert sys.executable
