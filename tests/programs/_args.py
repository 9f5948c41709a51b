"""Tiny `--key=value` parser shared by the test programs (no argparse: programs must accept any
parameter verbatim, shell metacharacters included)."""

from __future__ import annotations


def parse(argv: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for arg in argv:
        if arg.startswith("--") and "=" in arg:
            key, value = arg[2:].split("=", 1)
            out[key] = value
    return out
