"""Ray Tune's ASHA side of benchmarks/pruning.py; run with benchmarks/.venv-ray/bin/python.

`ray_pruning.py CONFIGS_JSON EPOCH_LOG`: the given trial configs in order (the same ones the
sweepq sweeps ran, through `tune.grid_search`), 2 at a time (ray.init(num_cpus=2)), with
ASHAScheduler(max_t=27, grace_period=1, reduction_factor=3) on val_acc (max), training with the
quickstart's own `train_epochs`. Every reported epoch is appended to EPOCH_LOG as
"time trial epoch val_acc" so the caller can order epochs across trials. Prints one JSON object.
"""

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")


def trainable(config):
    # sweepq's package needs nothing from this venv to be imported (its SDK loads lazily)
    sys.path[:0] = [str(ROOT), str(ROOT / "examples" / "quickstart")]
    import train
    from ray import tune

    cfg = config["cfg"]
    with open(config["log"], "a") as log:
        for row in train.train_epochs(cfg):
            log.write(f"{time.time()!r} {cfg['_trial']} {row['epoch']} {row['val_acc']!r}\n")
            log.flush()
            tune.report(row)


def main() -> None:
    configs = json.loads(Path(sys.argv[1]).read_text())
    epoch_log = sys.argv[2]
    for k, c in enumerate(configs):
        c["_trial"] = k
    from _ray_asha import fit_asha

    fit_asha(
        trainable,
        configs,
        {"log": epoch_log},
        num_cpus=2,
        metric="val_acc",
        mode="max",
        max_t=27,
        grace_period=1,
        reduction_factor=3,
    )


if __name__ == "__main__":
    main()
