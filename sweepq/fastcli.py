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
    try:
        _dispatch()
    except SystemExit as done:
        _exit_now(done.code)
    _exit_now(0)


def _dispatch() -> None:
    args = sys.argv[1:]
    if len(args) in (2, 3) and args[0] == "validate" and not args[1].startswith("-") and args[2:] in ([], ["--json"]):
        sys.exit(_validate(args[1], as_json=args[2:] == ["--json"]))
    from sweepq.cli import main as full

    full()


def _exit_now(code: str | int | None) -> None:
    """Exit as `sys.exit(code)` would, without the interpreter's teardown of every module
    (0.1-0.13 s after `sweepq plan`, which has imported redis, rq, optuna...): the exit
    handlers run (weakref finalizers, logging, an embedded server's shutdown), the standard
    streams are flushed, then the process ends. Where a non-daemon thread still runs, the
    normal exit waits for it."""
    import atexit
    import os
    import threading

    run_handlers = getattr(atexit, "_run_exitfuncs", None)
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    watched = sys.getprofile() is not None or sys.gettrace() is not None  # cProfile, coverage, pdb
    if run_handlers is None or others or watched:
        sys.exit(code)
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    run_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed pipe (`sweepq trials ID | head`), a closed stream
            pass
    os._exit(status & 0xFF)


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
