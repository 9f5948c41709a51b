"""A plain argparse script driven by `${args}`: it does not import sweepq and reports its metric
by printing `name=value` lines, which the runner reads from stdout."""

import argparse
import math
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--optimizer", default="sgd")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    penalty = {"sgd": 0.05, "adam": 0.0}[args.optimizer]
    for epoch in range(1, args.epochs + 1):
        # A made-up learning curve with a minimum near lr=0.03, momentum=0.9.
        loss = (math.log10(args.lr) + 1.5) ** 2 + (args.momentum - 0.9) ** 2 + penalty + 1 / epoch
        print(f"epoch={epoch} val_loss={loss:.5f}", flush=True)
        time.sleep(0.02)


if __name__ == "__main__":
    main()
