"""Why sweepq's default ends digits_mlp at regret 0.00278 (issue 14): the table, and where each engine looks.

Part 1, the table alone: the optimum's grid neighbours, how many points lie near it, and its rank
under sweepq's GP fitted on the other 671 points (the best a smooth model could know).
Part 2, per engine and seed (pending trials as in search_quality.py): distinct points run, how
many of the points within 3 test samples of the optimum were run, whether the optimum was, and
the mean grid distance (L1 in list steps) of trials 30-49 from the incumbent when each was asked.

    python benchmarks/digits_needle.py --seeds 0-19 --pending 4
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
import search_quality as sq  # noqa: E402
import tables  # noqa: E402

SAMPLE = 1 / 719  # one validation sample of digits_mlp (40 % of 1,797)


def table() -> tuple[list[str], dict[str, list[Any]], np.ndarray]:
    grid, lookup = tables.load("digits_mlp")
    names = list(grid)
    opt = min(lookup.values())
    a = np.zeros([len(grid[n]) for n in names])
    for k, v in lookup.items():
        a[tuple(grid[n].index(x) for n, x in zip(names, k, strict=True))] = (v - opt) / SAMPLE
    return names, grid, a


def part1() -> None:
    from optuna.distributions import IntDistribution

    from sweepq import gp as gp_module

    names, grid, a = table()
    opt = tuple(int(i) for i in np.argwhere(a == 0)[0])
    print(f"optimum at list positions {opt} ({dict((n, grid[n][i]) for n, i in zip(names, opt, strict=True))})")
    for d, name in enumerate(names):
        for step in (-1, 1):
            q = list(opt)
            q[d] += step
            if 0 <= q[d] < a.shape[d]:
                print(f"  neighbour {name} {step:+d}: {a[tuple(q)]:.0f} samples worse")
    for k in (2, 3, 7):
        print(f"points within {k} samples of the optimum: {int((a <= k + 0.01).sum())} of {a.size}")
    idx = np.indices(a.shape).reshape(4, -1).T
    x = idx / (np.array(a.shape) - 1)
    y = a.reshape(-1)
    space = {n: IntDistribution(0, len(grid[n]) - 1) for n in names}
    s = gp_module.SklearnGPSampler(space, seed=0)
    ni = int(np.argmin(y))
    keep = np.arange(len(y)) != ni
    yw = gp_module._warp(y)
    gp = s._fit(x[keep], yw[keep])
    order = np.argsort(np.asarray(gp.predict(x)))
    rank = lambda i: int(np.where(order == i)[0][0]) + 1  # noqa: E731
    print(f"GP on the other {keep.sum()} points: {gp.kernel_}")
    print(f"  the optimum's rank by posterior mean: {rank(ni)} of {len(y)}")
    print(f"  ranks of the 2-samples-worse points: {sorted(rank(int(i)) for i in np.flatnonzero(np.isclose(y, 2)))}")


def part2(engine: str, seeds: list[int], pending: int, trials: int = 50) -> None:
    names, grid, a = table()
    prob = sq.problem("digits_mlp")
    near = {tuple(int(i) for i in p) for p in np.argwhere(a <= 3.01)}
    opt = tuple(int(i) for i in np.argwhere(a == 0)[0])
    finals, dists, hits = [], [], 0
    for seed in seeds:
        ask, tell = (
            sq._sweepq("digits_mlp", seed, "auto")
            if engine == "sweepq-auto"
            else sq._wandb("digits_mlp", seed, "bayes")
        )
        pts: list[tuple[int, ...]] = []

        def ask2(n: int, ask: Any = ask, pts: list[tuple[int, ...]] = pts) -> tuple[Any, dict[str, Any]]:
            h, p = ask(n)
            pts.append(tuple(grid[k].index(p[k]) for k in names))
            return h, p

        sq.simulate(ask2, tell, prob.f, trials, pending)
        regret = [a[p] for p in pts]
        d = []
        for i in range(30, trials):
            told = pts[: max(0, i - pending)]  # finished when trial i was asked
            inc = min(told, key=lambda p: a[p])
            d.append(sum(abs(u - v) for u, v in zip(pts[i], inc, strict=True)))
        hist = collections.Counter(p[0] for p in pts[10:])
        finals.append(round(float(min(regret))))
        dists.append(float(np.mean(d)))
        hits += opt in pts
        print(
            f"{engine} seed {seed}: final {min(regret):.0f} samples, distinct {len(set(pts))}, "
            f"near points run {len(set(pts) & near)}/{len(near)}, optimum run {opt in pts}, "
            f"trials 30-49 mean L1 to incumbent {np.mean(d):.2f}, "
            f"hidden positions (trials 10-49) {sorted(hist.items())}",
            flush=True,
        )
    print(
        f"{engine} pending {pending}: optimum found {hits}/{len(seeds)}, "
        f"finals (samples: seeds) {sorted(collections.Counter(finals).items())}, "
        f"mean L1 to incumbent {np.mean(dists):.2f}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0-19")
    ap.add_argument("--pending", type=int, default=4)
    ap.add_argument("--engines", default="sweepq-auto,wandb-bayes")
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args()
    part1()
    if args.table_only:
        return 0
    lo, _, hi = args.seeds.partition("-")
    seeds = list(range(int(lo), int(hi or lo) + 1))
    for engine in args.engines.split(","):
        part2(engine, seeds, args.pending)
    return 0


if __name__ == "__main__":
    sys.exit(main())
