"""What a sweep would start first, with no Redis: parameters and the exact argv per trial."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from sweepq.command import render
from sweepq.config import SweepConfig

__all__ = ["ARGS_JSON_PLACEHOLDER", "DEFAULT_DRAWS", "preview"]

DEFAULT_DRAWS = 10
# Preview writes no files: this names where the runner would write the trial's JSON.
ARGS_JSON_PLACEHOLDER = "<args_json_file>"


def _command(config: SweepConfig, params: dict[str, Any]) -> list[str] | None:
    """None in function mode: a config without `program` cannot run its `${program}`."""
    if config.program is None and "${program}" in config.command:
        return None
    return render(config, params, args_json_file=ARGS_JSON_PLACEHOLDER)


def preview(config: SweepConfig, *, n: int | None = None, seed: int = 0) -> Iterator[dict[str, Any]]:
    """Grid: every point in order (or the first n). Random and bayes: n draws (default 10).

    Bayes starts from the same prior draws as random; later trials depend on results.
    Draws are reproducible per seed (numpy default_rng).
    """
    if config.method == "grid":
        points: Iterator[dict[str, Any]] = config.space.iter_grid()
        if n is not None:
            points = itertools.islice(points, max(n, 0))
    else:
        import numpy as np

        rng = np.random.default_rng(seed)
        count = DEFAULT_DRAWS if n is None else max(n, 0)
        points = (config.space.sample(rng) for _ in range(count))
    for params in points:
        yield {"params": params, "command": _command(config, params)}
