"""The `sweepq` command: a thin typer layer that parses, calls the library and renders."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer

from sweepq.errors import ConfigError, SweepqError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Hyperparameter sweeps in the W&B Sweeps language on Redis + RQ workers.",
)

PathArg = Annotated[str, typer.Argument(help="sweep.yaml / .json, or - for stdin")]


def _fail(err: SweepqError) -> typer.Exit:
    """One message per line on stderr, exit 2: bad input never shows a traceback."""
    lines = [str(v) for v in err.violations] if isinstance(err, ConfigError) else [str(err)]
    for line in lines:
        typer.echo(line, err=True)
    return typer.Exit(2)


@app.command()
def validate(
    path: PathArg,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of YAML")] = False,
) -> None:
    """Check a sweep config and print it normalized (explicit distributions, defaults filled)."""
    from sweepq import config as cfgmod

    try:
        cfg = cfgmod.load(path)
    except SweepqError as err:
        raise _fail(err) from None
    for warning in cfg.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if as_json:
        typer.echo(json.dumps(cfg.to_dict(), indent=2))
    else:
        import yaml

        typer.echo(yaml.safe_dump(cfg.to_dict(), sort_keys=False).rstrip())


@app.command()
def preview(
    path: PathArg,
    n: Annotated[Optional[int], typer.Option("-n", help="how many trials (default: whole grid, or 10)")] = None,  # noqa: UP045
    seed: Annotated[int, typer.Option("--seed", help="random seed")] = 0,
) -> None:
    """Print the trials the sweep would start first, one JSON object per line; needs no Redis."""
    from sweepq import config as cfgmod
    from sweepq.preview import preview as make_preview

    try:
        cfg = cfgmod.load(path)
        for warning in cfg.warnings:
            typer.echo(f"warning: {warning}", err=True)
        for item in make_preview(cfg, n=n, seed=seed):
            typer.echo(json.dumps(item))
    except SweepqError as err:
        raise _fail(err) from None


def main() -> None:
    """Entry point: SweepqError anywhere becomes one clean message and exit code 2."""
    try:
        app()
    except SweepqError as err:  # pragma: no cover - commands catch their own
        for line in str(err).splitlines():
            print(line, file=sys.stderr)
        sys.exit(2)
