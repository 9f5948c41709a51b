"""The `sweepq` entry point: `validate` without the CLI framework, everything else through typer.

`sweepq validate sweep.yaml` is what an editor hook or a pre-commit check runs on every save;
importing typer (and what it pulls) costs more than the validation itself. The plain forms
(`validate PATH`, `validate PATH --json`) are answered here with the same output and exit codes;
any other argument list (help, options we do not know) goes to the full CLI in `sweepq.cli`.
"""

from __future__ import annotations

import json
import sys

__all__ = ["main"]


def main() -> None:
    args = sys.argv[1:]
    if len(args) in (2, 3) and args[0] == "validate" and not args[1].startswith("-") and args[2:] in ([], ["--json"]):
        sys.exit(_validate(args[1], as_json=args[2:] == ["--json"]))
    from sweepq.cli import main as full

    full()


def _validate(path: str, *, as_json: bool) -> int:
    from sweepq import config as cfgmod
    from sweepq.errors import ConfigError, SweepqError

    try:
        cfg = cfgmod.load(path)
    except SweepqError as err:
        lines = [str(v) for v in err.violations] if isinstance(err, ConfigError) else [str(err)]
        for line in lines:
            print(line, file=sys.stderr)
        return 2
    for warning in cfg.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    try:
        print(json.dumps(cfg.to_dict(), indent=2) if as_json else cfgmod.to_yaml(cfg).rstrip())
        sys.stdout.flush()
    except BrokenPipeError:  # `sweepq validate x.yaml | head`
        sys.stdout = None
    return 0
