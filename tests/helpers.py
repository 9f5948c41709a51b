"""Shared helpers for the end-to-end tests: real `rq worker` processes, the real `sweepq` CLI as a
subprocess, and polling with deadlines so that a hang fails a test instead of blocking CI.

Fixtures defined here (`workers`, `plans`) are imported by the test modules that use them; each
cleans up every process it started (SIGTERM, a short wait, then SIGKILL of the whole tree).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue as queue_mod
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis
import yaml

from sweepq.planner import Planner
from sweepq.store import Store

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = Path(__file__).resolve().parent / "programs"
PY = sys.executable
VENV_BIN = str(Path(sys.executable).parent)


def program(name: str) -> str:
    """Absolute path of a test program, so any worker cwd finds it."""
    path = PROGRAMS / name
    assert path.exists(), path
    return str(path)


def base_env(**extra: str) -> dict[str, str]:
    """The environment for workers and CLI runs: `python` on PATH is this venv's (the default
    command is `/usr/bin/env python prog args`), the repo is importable, and no Redis URL leaks in
    from the outer environment."""
    env = dict(os.environ)
    env.pop("SWEEPQ_REDIS_URL", None)
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def wait_for(pred: Callable[[], Any], *, timeout: float, interval: float = 0.1, what: str = "") -> Any:
    """Poll `pred` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or pred}")
        time.sleep(interval)


def write_config(directory: Path, config: dict[str, Any], name: str = "sweep.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# --- processes --------------------------------------------------------------------------------------


def _tree(pid: int) -> list[psutil.Process]:
    try:
        proc = psutil.Process(pid)
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def kill_tree(procs: Sequence[psutil.Process]) -> None:
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(list(procs), timeout=5)


def terminate(popen: subprocess.Popen[Any], *, wait: float = 10.0) -> None:
    """SIGTERM, wait, then SIGKILL the process and everything it started (found before the
    SIGTERM, so children reparented meanwhile are not lost)."""
    if popen.poll() is not None:
        return
    tree = _tree(popen.pid)
    with contextlib.suppress(ProcessLookupError):
        popen.send_signal(signal.SIGTERM)
    try:
        popen.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        pass
    tree += [p for p in _tree(popen.pid) if p not in tree]
    kill_tree([p for p in tree if p.is_running()])
    with contextlib.suppress(subprocess.TimeoutExpired):
        popen.wait(timeout=5)


def kill_by_env(key: str, value: str) -> list[int]:
    """Kill the processes whose environment has key=value (a marker only our own children carry,
    such as a tmp SWEEPQ_HOME): the safety net for a failed test's stray local workers."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.pid != os.getpid() and proc.environ().get(key) == value:
                found.append(proc)
    kill_tree(found)
    return [p.pid for p in found]


def alive(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class Workers:
    """Real long-running `rq worker -w sweepq.worker.Worker` processes on one Redis."""

    def __init__(self, url: str, log_dir: Path) -> None:
        self.url = url
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []
        self._n = 0

    def start(
        self,
        n: int,
        *,
        queue: str = "sweepq",
        cwd: Path = ROOT,
        env: dict[str, str] | None = None,
        wait: bool = True,
        extra: Sequence[str] = (),
    ) -> list[subprocess.Popen[bytes]]:
        started = []
        for _ in range(n):
            self._n += 1
            log = open(self.log_dir / f"worker-{self._n}.log", "ab")  # noqa: SIM115
            started.append(
                subprocess.Popen(
                    [
                        PY,
                        "-m",
                        "rq.cli",
                        "worker",
                        "--url",
                        self.url,
                        "-w",
                        "sweepq.worker.Worker",
                        "--name",
                        f"e2e-{os.getpid()}-{self._n}",
                        *extra,
                        queue,
                    ],
                    cwd=cwd,
                    env=env or base_env(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
            log.close()
        self.procs += started
        if wait:
            self.wait_registered(len([p for p in self.procs if p.poll() is None]), queue=queue)
        return started

    def wait_registered(self, n: int, *, queue: str = "sweepq", timeout: float = 30) -> None:
        from rq import Queue, Worker

        conn = redis.Redis.from_url(self.url)
        try:
            wait_for(
                lambda: len(Worker.all(queue=Queue(queue, connection=conn))) >= n,
                timeout=timeout,
                what=f"{n} rq workers to register on {queue!r}\n" + self.logs(),
            )
        finally:
            conn.close()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.log_dir.glob("worker-*.log")))

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)
        for p in self.procs:
            terminate(p, wait=8.0)


class Plan:
    """`sweepq plan ...` as a subprocess: the first stdout line is the sweep id."""

    def __init__(self, argv: Sequence[str], *, cwd: Path, env: dict[str, str], log: Path) -> None:
        self.argv = list(argv)
        self.stderr_path = log
        self._stderr = open(log, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.argv,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._lines: queue_mod.Queue[str | None] = queue_mod.Queue()
        self.stdout: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._sweep_id: str | None = None

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.stdout.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def sweep_id(self, timeout: float = 30) -> str:
        if self._sweep_id is None:
            try:
                line = self._lines.get(timeout=timeout)
            except queue_mod.Empty:
                pytest.fail(f"`sweepq plan` printed no sweep id in {timeout}s: {self.stderr()}")
            if not line:
                self.proc.wait(timeout=10)
                pytest.fail(f"`sweepq plan` exited {self.proc.returncode} without a sweep id: {self.stderr()}")
            self._sweep_id = line.strip()
        return self._sweep_id

    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")[-4000:]

    def wait(self, timeout: float) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`sweepq plan` still running after {timeout}s: {self.stderr()}")
        self._reader.join(timeout=5)
        return rc

    def close(self) -> None:
        terminate(self.proc, wait=10.0)
        self._stderr.close()


class Plans:
    def __init__(self, url: str, tmp: Path) -> None:
        self.url, self.tmp = url, tmp
        self.started: list[Plan] = []

    def start(
        self,
        config: dict[str, Any] | Path,
        *,
        args: Sequence[str] = (),
        grace: float = 1.0,
        workers: int = 0,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        redis_url: str | None = None,
    ) -> Plan:
        path = config if isinstance(config, Path) else write_config(self.tmp, config, f"sweep-{len(self.started)}.yaml")
        argv = [
            PY,
            "-m",
            "sweepq",
            "plan",
            str(path),
            "--redis",
            redis_url or self.url,
            "--workers",
            str(workers),
            "--grace",
            str(grace),
            *args,
        ]
        plan = Plan(argv, cwd=cwd or self.tmp, env=env or base_env(), log=self.tmp / f"plan-{len(self.started)}.stderr")
        self.started.append(plan)
        return plan

    def close(self) -> None:
        for p in self.started:
            p.close()


def cli(
    *args: str, timeout: float = 60, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m sweepq ARGS` to the end (a hang fails the test)."""
    try:
        return subprocess.run(
            [PY, "-m", "sweepq", *args],
            cwd=cwd or ROOT,
            env=env or base_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"`sweepq {' '.join(args)}` hung for {timeout}s: {err.stderr!r}")


def trials_json(url: str, sweep_id: str) -> list[dict[str, Any]]:
    out = cli("trials", sweep_id, "--json", "--redis", url)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def sweep_state(r: redis.Redis, sweep_id: str) -> str:
    from sweepq.store import Store

    return Store(r).sweep(sweep_id).state


# --- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture()
def workers(redis_url: str, r: redis.Redis, tmp_path: Path) -> Iterator[Workers]:
    """Start workers with `workers.start(n)`; all are stopped (then killed) at test end."""
    log_dir = tmp_path / "worker-logs"
    log_dir.mkdir()
    pool = Workers(redis_url, log_dir)
    try:
        yield pool
    finally:
        pool.stop()


@pytest.fixture()
def plans(redis_url: str, r: redis.Redis, tmp_path: Path) -> Iterator[Plans]:
    """Start `sweepq plan` subprocesses with `plans.start(config)`; all are stopped at test end."""
    p = Plans(redis_url, tmp_path)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture()
def out_dir(tmp_path: Path) -> Path:
    """Where test programs write what they saw (passed to workers as SWEEPQ_TEST_OUT)."""
    d = tmp_path / "out"
    d.mkdir()
    return d


class PlannerThread:
    """A real Planner in a thread of the test process, stopped and joined by the test."""

    def __init__(self, store: Store, sweep_id: str) -> None:
        self.stop = threading.Event()
        self.planner = Planner(store, sweep_id)
        self.result: Any = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.result = self.planner.run(should_exit=self.stop.is_set)

    def join(self, timeout: float) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "planner did not finish"
        return self.result

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)


def program_sweep(store: Store, tmp_path: Path, program: str, *, run_cap: int = 1, **settings: Any) -> str:
    """A random sweep over one parameter `x` whose program is `program` (written to prog.py)."""
    import textwrap

    from sweepq import config as cfgmod
    from sweepq.model import Settings

    (tmp_path / "prog.py").write_text(textwrap.dedent(program))
    cfg = cfgmod.load(
        {
            "program": "prog.py",
            "method": "random",
            "run_cap": run_cap,
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"x": {"min": 0.0, "max": 1.0}},
        }
    )
    return store.create_sweep(cfg, Settings(workdir=str(tmp_path), seed=1, **settings), cap=run_cap)
