"""Chaos: a sweep with workers kill -9'd at random and the planner killed once.

`tests/test_chaos.py` runs a 100-trial version; for a longer one run
`python -m tests.chaos --trials 500 --kills 60 --redis redis://127.0.0.1:6379/15`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from sweepq import config as cfgmod
from sweepq.model import Settings
from sweepq.store import Store

PROGRAM = """
import os, sys, time
x = float(sys.argv[1].split("=")[1])
for i in range(3):
    print(f"loss={x / (i + 1)}")
    time.sleep(0.05)
with open(os.environ["CHAOS_DONE"], "a") as f:
    f.write(f"{os.environ['SWEEPQ_TRIAL']} {os.environ['SWEEPQ_ATTEMPT']}\\n")
"""


@dataclass
class ChaosResult:
    trials: int
    finished: int
    worker_kills: int
    planner_kills: int
    attempts: int
    completions: list[tuple[int, int]]
    rq_mismatches: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        return json.dumps({k: v for k, v in self.__dict__.items() if k != "completions"})


def run_chaos(
    url: str,
    workdir: Path,
    *,
    trials: int = 100,
    workers: int = 4,
    kills: int = 10,
    seed: int = 0,
    timeout: float = 240.0,
) -> ChaosResult:
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "prog.py").write_text(PROGRAM)
    done = workdir / "done.log"
    done.write_text("")
    env = {**os.environ, "CHAOS_DONE": str(done), "PYTHONUNBUFFERED": "1"}
    store = Store(redis.Redis.from_url(url))
    cfg = cfgmod.load(
        {
            "program": "prog.py",
            "method": "random",
            "run_cap": trials,
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"x": {"min": 0.0, "max": 1.0}},
        }
    )
    settings = Settings(workdir=str(workdir), seed=seed, heartbeat_timeout=2.0, max_attempts=8, grace=1.0, fail_pause=0)
    sid = store.create_sweep(cfg, settings, cap=trials)
    pool: list[subprocess.Popen[bytes]] = []
    names: dict[int, str] = {}
    killed: set[str] = set()

    def start_worker() -> None:
        name = f"chaos-{len(pool)}-{os.getpid()}"
        pool.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "rq.cli",
                    "worker",
                    "--url",
                    url,
                    "-w",
                    "sweepq.worker.Worker",
                    "--name",
                    name,
                    "sweepq",
                ],
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        names[pool[-1].pid] = name

    def start_planner() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "sweepq", "plan", "--resume", sid, "--redis", url, "--workers", "0"],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    started = time.monotonic()
    planner = start_planner()
    for _ in range(workers):
        start_worker()
    worker_kills = planner_kills = 0
    try:
        while time.monotonic() - started < timeout:
            finished = store.sweep(sid).counts["finished"]
            if planner_kills == 0 and finished >= trials // 3:
                os.kill(planner.pid, signal.SIGKILL)
                planner.wait()
                planner_kills += 1
                planner = start_planner()
            if worker_kills < kills and store.sweep(sid).counts["running"]:
                live = [p for p in pool if p.poll() is None]
                victim = rng.choice(live)
                os.kill(victim.pid, signal.SIGKILL)  # the worker process alone
                victim.wait()
                killed.add(names[victim.pid])
                worker_kills += 1
                start_worker()
            if planner.poll() is not None and store.sweep(sid).state == "finished":
                break
            time.sleep(rng.uniform(0.2, 0.6) if worker_kills < kills else 0.2)
    finally:
        live = [p for p in [*pool, planner] if p.poll() is None]
        for p in live:  # a warm shutdown lets RQ finish its bookkeeping of the last jobs
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
        for p in live:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                killed.add(names.get(p.pid, ""))
    records = store.trials(sid)
    completions = [tuple(map(int, line.split())) for line in done.read_text().splitlines()]
    return ChaosResult(
        trials=len(records),
        finished=sum(t.state == "finished" for t in records),
        worker_kills=worker_kills,
        planner_kills=planner_kills,
        attempts=sum(t.attempt for t in records),
        completions=completions,  # type: ignore[arg-type]
        rq_mismatches=_rq_mismatches(store, sid, killed),
        seconds=round(time.monotonic() - started, 1),
    )


def _rq_mismatches(store: Store, sid: str, killed: set[str]) -> list[str]:
    """Trial records that disagree with RQ. A finished trial's job is gone from RQ (trial jobs
    keep no result: RQ deletes them on success), unless its worker was killed after the trial's
    outcome was recorded and before RQ's own bookkeeping: RQ then shows the job started (until
    its abandoned-job cleanup), and the trial record, the source of truth, is right. Nothing
    else may differ."""
    out = []
    for t in store.trials(sid):
        if t.state != "finished":
            continue
        try:
            job = Job.fetch(t.job_id, connection=store.r)
            status = job.get_status()
        except NoSuchJobError:
            continue  # finished and deleted, as it should be
        except Exception as err:  # noqa: BLE001 - report, do not hide
            out.append(f"trial {t.number}: job {t.job_id}: {err}")
            continue
        if status == JobStatus.STARTED and job.worker_name in killed:
            continue
        out.append(f"trial {t.number} finished but job {t.job_id} is {status} (worker {job.worker_name})")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--kills", type=int, default=40)
    parser.add_argument("--workdir", default="/tmp/sweepq-chaos")
    args = parser.parse_args()
    result = run_chaos(
        args.redis, Path(args.workdir), trials=args.trials, workers=args.workers, kills=args.kills, timeout=900
    )
    print(result.summary())


if __name__ == "__main__":
    main()
