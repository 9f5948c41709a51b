"""Ray Tune's side of benchmarks/utilization.py; run with benchmarks/.venv-ray/bin/python.

`ray_utilization.py DIR CONFIGS_JSON`: the given trial configs in order (the trials sweepq's
random run made), 4 at a time (ray.init(num_cpus=4): 4 trial slots on the machine's CPUs, as
sweepq's 4 workers), `torch_train.train` from DIR with `reuse_actors=True` and ASHA matching the
sweep's hyperband (grace 2 epochs, reduction factor 2, max 4 epochs). `torch_train` appends its
rows to $SWEEPQ_BENCH_OUT/trials.jsonl as in the sweepq runs. Prints one JSON object.
"""

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")


class _Report:
    """Stands in for `sweepq` inside torch_train: its log() is Ray's report."""

    class Stopped(Exception):  # noqa: N818 - torch_train catches sweepq.Stopped
        pass

    Config = dict

    @staticmethod
    def log(row, **_):
        from ray import tune

        tune.report(dict(row))


def trainable(config):
    sys.path[:0] = [config["dir"], str(ROOT)]  # sweepq's `import sweepq` needs nothing from this venv
    import torch_train

    torch_train.sweepq = _Report
    os.environ["SWEEPQ_TRIAL"] = str(config["cfg"]["_trial"])
    torch_train.train(config["cfg"])


def main() -> None:
    directory, configs = sys.argv[1], json.loads(Path(sys.argv[2]).read_text())
    from _ray_asha import fit_asha

    fit_asha(
        trainable,
        configs,
        {"dir": directory},
        num_cpus=4,
        metric="loss",
        mode="min",
        max_t=4,
        grace_period=2,
        reduction_factor=2,
        reuse_actors=True,
    )


if __name__ == "__main__":
    main()
