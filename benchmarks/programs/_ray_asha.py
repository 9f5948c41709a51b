"""What the Ray Tune drivers (ray_pruning.py, ray_utilization.py) share: ray.init with `num_cpus`
trial slots, one Tuner over the given configs with single-bracket ASHA on `metric`, and the one
JSON line each prints. Run in benchmarks/.venv-ray only."""

import json
import tempfile
import time


def fit_asha(
    trainable, configs, shared, *, num_cpus, metric, mode, max_t, grace_period, reduction_factor, **tune_config
):
    """Run each of `configs` (as config["cfg"], in order, beside the `shared` entries) under ASHA;
    print {"ray", "init_s", "fit_s", "n", "errors"}."""
    t0 = time.perf_counter()
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    t_init = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="sq-ray-") as storage:
        t = time.perf_counter()
        tuner = tune.Tuner(
            trainable,
            param_space={"cfg": tune.grid_search(configs), **shared},
            tune_config=tune.TuneConfig(
                metric=metric,
                mode=mode,
                scheduler=ASHAScheduler(
                    time_attr="training_iteration",
                    max_t=max_t,
                    grace_period=grace_period,
                    reduction_factor=reduction_factor,
                    brackets=1,
                ),
                **tune_config,
            ),
            run_config=tune.RunConfig(storage_path=storage, name="asha", verbose=0),
        )
        results = tuner.fit()
        fit = time.perf_counter() - t
    errors = [str(r.error)[:300] for r in results if r.error is not None]
    ray.shutdown()
    n = len(results)
    print(json.dumps({"ray": ray.__version__, "init_s": t_init, "fit_s": fit, "n": n, "errors": errors}))
