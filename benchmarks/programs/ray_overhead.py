"""Ray Tune's side of benchmarks/overhead.py; run with benchmarks/.venv-ray/bin/python.

`ray_overhead.py N_DEFAULT N_REUSE`: no-op function trials, 2 at a time (ray.init(num_cpus=2),
1 CPU per trial), first N_DEFAULT with Ray's defaults, then N_REUSE with reuse_actors=True
(0 skips one). Prints one JSON object.
"""

import json
import os
import sys
import tempfile
import time

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")


def noop(config):
    return {"done": 1}


def main() -> None:
    counts = {"default": int(sys.argv[1]), "reuse_actors": int(sys.argv[2])}
    t0 = time.perf_counter()
    import ray
    from ray import tune

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    out = {"ray": ray.__version__, "init_s": time.perf_counter() - t0}
    with tempfile.TemporaryDirectory(prefix="sq-ray-") as storage:
        for label, n in counts.items():
            if n <= 0:
                continue
            t = time.perf_counter()
            tuner = tune.Tuner(
                noop,
                param_space={"i": tune.grid_search(list(range(n)))},
                tune_config=tune.TuneConfig(reuse_actors=label == "reuse_actors"),
                run_config=tune.RunConfig(storage_path=storage, name=label, verbose=0),
            )
            results = tuner.fit()
            ok = sum(1 for r in results if r.error is None)
            out[label] = {"n": n, "fit_s": time.perf_counter() - t, "ok": ok}
    ray.shutdown()
    out["total_s"] = time.perf_counter() - t0
    print(json.dumps(out))


if __name__ == "__main__":
    main()
