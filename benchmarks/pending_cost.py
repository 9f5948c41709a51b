"""What running trials cost a sweep: trials and rounds to the regret of fewer workers.

Issue 14 asks that regret with 4 pending be no worse than with 1. At the same number of trials
that cannot hold for any sequential method (each ask knows less), and it does not for W&B's
engine either; what a user buys with more workers is wall-clock. This reads two
`search_quality.py` result files (their raw best-so-far curves) and says, per problem, how many
trials k pending needs to reach the median regret that 1 pending reaches at its budget, and
where k pending stands after the same number of rounds (a round = one trial per worker).

    .venv/bin/python benchmarks/search_quality.py --engines sweepq-auto --seeds 20 --pending 4 \
        --trials 100 --no-trap --tag p4-100-trials
    .venv/bin/python benchmarks/pending_cost.py \
        --few benchmarks/results/search_quality-2026-12-02-final.txt \
        --few benchmarks/results/search_quality-2026-12-03-fresh-seeds-10-19.txt \
        --many benchmarks/results/search_quality-2026-12-03-p4-100-trials.txt
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

RAW = "Raw (per run: best-so-far regret in trial order):\n"
Curves = dict[str, dict[int, list[float]]]  # problem -> seed -> best-so-far regret per trial


def curves(files: Sequence[Path], engine: str, pending: int) -> Curves:
    out: Curves = {}
    for file in files:
        for run in json.loads(file.read_text().split(RAW, 1)[1])["runs"]:
            if run["engine"] == engine and run["pending"] == pending:
                out.setdefault(run["fn"], {})[run["seed"]] = [float(r) for r in run["regret"]]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--few", type=Path, action="append", required=True, help="result file(s) with the fewer pending")
    ap.add_argument("--many", type=Path, action="append", required=True, help="result file(s) with the more pending")
    ap.add_argument("--engine", default="sweepq-auto")
    ap.add_argument("--pending", default="1,4", help="few,many")
    ap.add_argument("--budget", type=int, default=50, help="the fewer-pending run's trials")
    args = ap.parse_args(argv)
    p_few, p_many = (int(p) for p in args.pending.split(","))
    few, many = curves(args.few, args.engine, p_few), curves(args.many, args.engine, p_many)
    lengths = {len(c) for by_seed in many.values() for c in by_seed.values()}
    if not lengths or min(lengths) <= args.budget:
        print(f"the {p_many}-pending runs need more than {args.budget} trials", file=sys.stderr)
        return 2
    long = min(lengths)
    print(
        f"{args.engine}: {p_few} pending ({p_few + 1} workers) at {args.budget} trials = "
        f"{args.budget / (p_few + 1):g} rounds; {p_many} pending ({p_many + 1} workers) at {long} trials = "
        f"{long / (p_many + 1):g} rounds; medians over the seeds both sides hold\n"
    )
    print(
        f"| problem | seeds | {p_few} pending @{args.budget} | {p_many} pending @{args.budget} "
        f"| {p_many} pending @{long} | trials for {p_many} pending to reach the {p_few}-pending median "
        f"| seeds where {p_many} pending @{long} <= {p_few} pending @{args.budget} |"
    )
    print("|---|---|---|---|---|---|---|")
    for fn, by_seed in many.items():
        seeds = sorted(set(by_seed) & set(few.get(fn, {})))
        if not seeds:
            continue
        bar = statistics.median(few[fn][s][args.budget - 1] for s in seeds)
        median = [statistics.median(by_seed[s][n] for s in seeds) for n in range(long)]
        reach = next((str(n + 1) for n in range(long) if median[n] <= bar), f"> {long}")
        ahead = sum(by_seed[s][long - 1] <= few[fn][s][args.budget - 1] for s in seeds)
        print(
            f"| {fn} | {len(seeds)} | {bar:.3g} | {median[args.budget - 1]:.3g} | {median[long - 1]:.3g} "
            f"| {reach} | {ahead}/{len(seeds)} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
