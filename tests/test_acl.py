"""deploy/users.acl on a real redis-server: a sweep runs with one user per role, and each role
can do only its part (a worker cannot rewrite a config, a viewer cannot write, nobody without a
password gets in)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.helpers import base_env, terminate, wait_for, write_config

ACL = Path(__file__).resolve().parent.parent / "deploy" / "users.acl"
PASSWORDS = {"owner": "o-" + "x" * 30, "worker": "w-" + "y" * 30, "viewer": "v-" + "z" * 30}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def acl_server() -> Iterator[dict[str, str]]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server binary on this machine")
    work = Path(tempfile.mkdtemp(prefix="sqacl"))
    text = ACL.read_text()
    for role, password in PASSWORDS.items():
        text = text.replace(f"CHANGE-ME-{role}", password)
    (work / "users.acl").write_text(text)
    port = _free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(work), "--save", "", "--appendonly", "no"]
        + ["--aclfile", str(work / "users.acl")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    urls = {role: f"redis://sweepq-{role}:{pw}@127.0.0.1:{port}/0" for role, pw in PASSWORDS.items()}
    try:
        owner = redis.Redis.from_url(urls["owner"])
        wait_for(lambda: _pings(owner) or server.poll() is not None, timeout=15, what="redis-server")
        assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
        yield {**urls, "anonymous": f"redis://127.0.0.1:{port}/0"}
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.mark.parametrize("worker_class", ["sweepq.warm.WarmWorker", "sweepq.worker.Worker"])
def test_a_sweep_runs_with_one_user_per_role_and_each_role_is_confined(
    acl_server: dict[str, str], tmp_path: Path, worker_class: str
) -> None:
    (tmp_path / "prog.py").write_text("import sweepq\nrun = sweepq.init()\nsweepq.log({'loss': run.config['x']})\n")
    write_config(
        tmp_path,
        {
            "program": "prog.py",
            "method": "random",
            "run_cap": 3,
            "metric": {"name": "loss"},
            "parameters": {"x": {"min": 0.0, "max": 1.0}},
        },
    )
    env = base_env(SWEEPQ_HOME=str(tmp_path / ".sweepq"))
    worker = subprocess.Popen(
        [sys.executable, "-m", "rq.cli", "worker", "--url", acl_server["worker"], "-w", worker_class] + ["acl-test"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        plan = subprocess.run(
            [sys.executable, "-m", "sweepq", "plan", "sweep.yaml", "--redis", acl_server["owner"]]
            + ["--workers", "0", "--queue", "acl-test"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        terminate(worker)
    assert plan.returncode == 0, plan.stderr + (worker.stdout.read().decode() if worker.stdout else "")
    sid = plan.stdout.split()[0]

    viewer = subprocess.run(
        [sys.executable, "-m", "sweepq", "trials", sid, "--json", "--redis", acl_server["viewer"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert viewer.returncode == 0, viewer.stderr
    assert sorted(t["state"] for t in __import__("json").loads(viewer.stdout)) == ["finished"] * 3

    as_worker = redis.Redis.from_url(acl_server["worker"])
    assert as_worker.get(f"sweepq:{{{sid}}}:config")  # workers read configs...
    with pytest.raises(redis.exceptions.NoPermissionError):
        as_worker.set(f"sweepq:{{{sid}}}:config", '{"command": ["/bin/sh", "-c", "id"]}')  # ...never write them
    with pytest.raises(redis.exceptions.NoPermissionError):
        as_worker.flushall()
    with pytest.raises(redis.exceptions.NoPermissionError):
        as_worker.set(f"sweepq:{{{sid}}}:lease:planner", "me")

    as_viewer = redis.Redis.from_url(acl_server["viewer"])
    with pytest.raises(redis.exceptions.NoPermissionError):
        as_viewer.hset(f"sweepq:{{{sid}}}:trial:0", "state", "queued")
    with pytest.raises(redis.exceptions.NoPermissionError):
        as_viewer.config_set("appendonly", "no")

    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(acl_server["anonymous"]).ping()
