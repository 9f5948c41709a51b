"""What only a GPU box shows (issue 13): run it where CUDA is; never part of the tests or CI.

    .venv/bin/pip install torch && .venv/bin/python benchmarks/gpu_check.py [--out DIR]

Real sweeps on a private server, with the workers started as a GPU box starts them
(`workers/start-gpu-workers.sh`: one worker per visible GPU, pinned with CUDA_VISIBLE_DEVICES),
and `programs/gpu_trial.py` as the trial:

1. pinning: every trial sees exactly one device, its worker's (CUDA_VISIBLE_DEVICES is one index
   of the box's, torch counts one device), and every GPU of the box gets trials;
2. a warm worker keeps its CUDA context: function mode (`gpu_trial:train`), one horse process
   for all of a worker's trials, CUDA already initialised when every trial but each worker's
   first begins, and a later trial's first CUDA operation far cheaper than the first trial's
   (the context's creation);
3. a stopped GPU program leaves no device memory behind: subprocess mode under hyperband, each
   trial holding `--mib` MiB; every trial starts with about the free memory the first one had.

Without CUDA the same sweeps run on the CPU and only the harness is checked (it says so, and
the GPU-only checks are reported as not applicable). Prints each check's verdict and the
numbers behind it; writes everything to <out>/gpu_check-<date>.json. Exit 1 if a check failed.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

FUNCTION_SWEEP = """
program: gpu_trial:train
method: grid
parameters:
  i: {{values: {trials}}}
  mib: {{value: 256}}
  lr: {{value: 0.1}}
  epochs: {{value: 2}}
  seconds: {{value: 0.5}}
"""

STOP_SWEEP = """
program: gpu_trial.py
method: grid
metric: {{name: loss, goal: minimize}}
early_terminate: {{type: hyperband, min_iter: 1, eta: 2}}
parameters:
  i: {{values: {trials}}}
  lr: {{values: [0.5, 0.0001]}}
  mib: {{value: {mib}}}
  epochs: {{value: 8}}
  seconds: {{value: 2.0}}
"""


def start_workers(url: str, queue: str, env: dict[str, str], cwd: Path, log_dir: Path) -> subprocess.Popen[bytes]:
    script = C.ROOT / "workers" / "start-gpu-workers.sh"
    argv = [str(script), "--url", url, "--queue", queue, "--allow-functions", "gpu_trial", "--log-dir", str(log_dir)]
    argv += ["--rq", str(Path(C.PYTHON).parent / "rq")]
    return subprocess.Popen(argv, cwd=cwd, env=env, start_new_session=True)


def stop_workers(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_sweep(text: str, url: str, queue: str, env: dict[str, str], cwd: Path, name: str) -> tuple[str, float]:
    path = cwd / f"{name}.yaml"
    path.write_text(text)
    argv = [C.PYTHON, "-m", "sweepq", "plan", str(path), "--redis", url, "--workers", "0", "--queue", queue]
    t = time.monotonic()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"sweepq plan {name} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-3000:]}")
    return proc.stdout.split()[0], time.monotonic() - t


def records(out: Path) -> list[dict[str, Any]]:
    path = out / "gpu_trials.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    path.unlink(missing_ok=True)
    return rows


def check_pinning(rows: list[dict[str, Any]], gpus: list[str], cuda: bool) -> dict[str, Any]:
    seen = sorted({str(r["visible"]) for r in rows})
    if not cuda:
        return {"verdict": "n/a (no CUDA)", "visible": seen}
    one_each = all(r["devices"] == 1 and str(r["visible"]) in gpus for r in rows)
    ok = one_each and set(seen) == set(gpus)
    return {"verdict": "pass" if ok else "FAIL", "gpus": gpus, "visible_per_trial": seen, "one_device_each": one_each}


def check_warm(rows: list[dict[str, Any]], cuda: bool) -> dict[str, Any]:
    by_worker: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for r in rows:
        by_worker[str(r["visible"])].append(r)
    one_horse = all(len({r["pid"] for r in rs}) == 1 for rs in by_worker.values())
    firsts = [rs[0] for rs in by_worker.values()]
    laters = [r for rs in by_worker.values() for r in rs[1:]]
    result: dict[str, Any] = {
        "trials": len(rows),
        "one_horse_per_worker": one_horse,
        "first_op_ms_first": [r["first_op_ms"] for r in firsts],
        "first_op_ms_later_median": statistics.median([r["first_op_ms"] for r in laters]) if laters else None,
    }
    if not cuda:
        result["verdict"] = "pass (harness only: no CUDA)" if one_horse and laters else "FAIL"
        return result
    kept = all(r["initialised_at_entry"] for r in laters) and not any(r["initialised_at_entry"] for r in firsts)
    cheap = bool(laters) and result["first_op_ms_later_median"] < 0.1 * min(result["first_op_ms_first"])
    result.update(context_kept=kept, later_first_op_cheap=cheap)
    result["verdict"] = "pass" if one_horse and kept and cheap else "FAIL"
    return result


def check_stop(rows: list[dict[str, Any]], states: dict[str, int], cuda: bool, mib: int) -> dict[str, Any]:
    stopped = states.get("pruned", 0)
    result: dict[str, Any] = {"states": states, "records": len(rows)}
    if not cuda:
        result["verdict"] = "pass (harness only: no CUDA)" if stopped else "FAIL (nothing was pruned)"
        return result
    by_worker: dict[str, list[int]] = collections.defaultdict(list)
    for r in sorted(rows, key=lambda r: r["trial"]):
        by_worker[str(r["visible"])].append(int(r["free_mib"]))
    drift = {w: max(free) - min(free) for w, free in by_worker.items()}
    result.update(free_mib_at_start=dict(by_worker), free_mib_spread=drift)
    ok = stopped > 0 and all(d < max(256, mib // 8) for d in drift.values())
    result["verdict"] = "pass" if ok else "FAIL"
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=C.RESULTS, help="where gpu_check-<date>.json goes")
    ap.add_argument("--trials", type=int, default=6, help="function-mode trials per worker (default 6)")
    ap.add_argument("--mib", type=int, default=0, help="MiB each stopped trial holds (default 4096; 64 on CPU)")
    args = ap.parse_args()
    import torch

    cuda = torch.cuda.is_available()
    # The devices start-gpu-workers.sh pins one worker each to: CUDA_VISIBLE_DEVICES's, else all.
    listed = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    gpus = (listed or [str(i) for i in range(torch.cuda.device_count())]) if cuda else [""]
    mib = args.mib or (4096 if cuda else 64)
    report: dict[str, Any] = {"cuda": cuda, "torch": torch.__version__, "gpus": gpus, "machine": C.machine()}
    if cuda:
        report["names"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    failed = False
    with C.redis_server(None) as url, tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "gpu_trial.py").write_text((C.PROGRAMS / "gpu_trial.py").read_text())
        env = {**C.bench_env(tmp), "SWEEPQ_BENCH_OUT": str(tmp)}
        # The owner's key first (`sweepq key` makes it): a worker with no trusted key will not start.
        key = subprocess.run(
            [C.PYTHON, "-m", "sweepq", "key"], env=env, capture_output=True, text=True, check=True
        ).stdout.split()[-1]
        env["SWEEPQ_TRUSTED_KEYS"] = key
        queue = C.new_queue("gpu")
        workers = start_workers(url, queue, env, tmp, tmp / "logs")
        try:
            n = args.trials * len(gpus)
            sid, wall = run_sweep(FUNCTION_SWEEP.format(trials=list(range(n))), url, queue, env, tmp, "warm")
            rows = records(tmp)
            report["pinning"] = check_pinning(rows, gpus, cuda)
            report["warm"] = {**check_warm(rows, cuda), "wall_s": round(wall, 1), "sweep": sid}
            sid, wall = run_sweep(STOP_SWEEP.format(trials=list(range(8)), mib=mib), url, queue, env, tmp, "stop")
            states = dict(collections.Counter(t["state"] for t in C.trials(url, sid)))
            report["stop"] = {**check_stop(records(tmp), states, cuda, mib), "wall_s": round(wall, 1), "sweep": sid}
        finally:
            stop_workers(workers)
            logs = sorted((tmp / "logs").glob("*")) if (tmp / "logs").exists() else []
            report["worker_log_tails"] = {p.name: p.read_text()[-1500:] for p in logs}
    for name in ("pinning", "warm", "stop"):
        verdict = str(report[name]["verdict"])
        failed = failed or verdict.startswith("FAIL")
        shown = {k: v for k, v in report[name].items() if k != "verdict"}
        print(f"{name:8s} {verdict}: {json.dumps(shown, default=str)}")
    if not cuda:
        print("no CUDA here: the sweeps ran on the CPU, so only the harness was checked")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"gpu_check-{dt.date.today().isoformat()}.json"
    path.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(f"raw: {path}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
