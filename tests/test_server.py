"""Where Redis is: URLs, checked clients and the embedded server of a directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from sweepq.errors import ConnectionFailed
from sweepq.server import EmbeddedServer, connect, resolve_url, stop_embedded, url_of


def test_the_embedded_server_is_started_once_found_again_and_stopped(tmp_path: Path) -> None:
    home = tmp_path / "home"
    server = EmbeddedServer(home)
    assert server.url() is None
    url = server.ensure()
    try:
        assert EmbeddedServer(home).ensure() == url  # a second command finds the same server
        client = connect(url)
        client.set("k", "v")
        assert client.config_get("appendonly")["appendonly"] == "yes"
    finally:
        assert stop_embedded(home)
    assert EmbeddedServer(home).url() is None
    assert not stop_embedded(home)


def test_a_bad_url_is_one_clear_error() -> None:
    with pytest.raises(ConnectionFailed, match="scheme"):
        connect("http://localhost:1/0")
    with pytest.raises(ConnectionFailed, match="cannot reach"):
        connect("redis://127.0.0.1:1/0")


def test_url_of_rebuilds_what_the_worker_uses(redis_url: str) -> None:
    client = connect(redis_url)
    again = redis.Redis.from_url(url_of(client))
    assert again.ping()
    kw = again.connection_pool.connection_kwargs
    assert kw.get("db", 0) == client.connection_pool.connection_kwargs.get("db", 0)


def test_the_flag_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWEEPQ_REDIS_URL", "redis://env:6379/0")
    assert resolve_url("redis://flag:6379/0") == "redis://flag:6379/0"
    assert resolve_url(None) == "redis://env:6379/0"
