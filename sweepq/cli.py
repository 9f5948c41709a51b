"""The `sweepq` command: a thin typer layer that parses, calls the library and renders."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from sweepq import __version__
from sweepq.errors import ConfigError, SweepqError
from sweepq.model import Settings

if TYPE_CHECKING:
    from sweepq.store import Store

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Hyperparameter sweeps in the W&B Sweeps language on Redis + RQ workers.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sweepq {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
    secret_file: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--secret-file", help="the owner's signing secret (else $SWEEPQ_SECRET(_FILE), else .sweepq/)"),
    ] = None,
) -> None:
    """Hyperparameter sweeps in the W&B Sweeps language on Redis + RQ workers."""
    if secret_file:
        import os

        from sweepq.trust import ENV_SECRET, ENV_SECRET_FILE

        os.environ.pop(ENV_SECRET, None)
        os.environ[ENV_SECRET_FILE] = secret_file


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
        typer.echo(cfgmod.to_yaml(cfg).rstrip())


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


RedisOpt = Annotated[Optional[str], typer.Option("--redis", help="Redis URL (else $SWEEPQ_REDIS_URL, else embedded)")]  # noqa: UP045
SweepArg = Annotated[str, typer.Argument(help="sweep id")]


def _store(url: str | None) -> Store:
    """The store for commands that read or steer sweeps: they never start an embedded server."""
    from sweepq.server import connect_existing
    from sweepq.store import Store

    return Store(connect_existing(url))


def _width() -> int:
    from rich.console import Console

    return Console().width


def _guard(fn: Any) -> Any:
    """SweepqError in a command becomes one line on stderr and exit 2."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SweepqError as err:
            raise _fail(err) from None

    return wrapper


_DEFAULT = Settings()


def _opt(name: str, *flags: str) -> Any:
    """A plan option whose default and help come from `Settings`, the one place that owns them."""
    return typer.Option(getattr(_DEFAULT, name), *flags, help=Settings.help(name))


@app.command()
@_guard
def plan(
    path: Annotated[Optional[str], typer.Argument(help="sweep.yaml (omit with --resume)")] = None,  # noqa: UP045
    redis_url: RedisOpt = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="local rq workers (1 embedded, 0 w/ URL)")] = None,  # noqa: UP045
    count: Annotated[Optional[int], typer.Option("--count", help="run at most this many trials")] = None,  # noqa: UP045
    detach: Annotated[bool, typer.Option("--detach", help="print the sweep id and plan in the background")] = False,
    queue: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--queue", help="RQ queue (default: sweepq; the sweep's own with the embedded server)"),
    ] = None,
    resume: Annotated[Optional[str], typer.Option("--resume", help="continue planning this sweep")] = None,  # noqa: UP045
    seed: Annotated[Optional[int], typer.Option("--seed", help="sampler seed (default: random)")] = None,  # noqa: UP045
    heartbeat_timeout: float = _opt("heartbeat_timeout", "--heartbeat-timeout"),
    grace: float = _opt("grace", "--grace"),
    time_limit: float = _opt("time_limit", "--time-limit"),
    max_attempts: int = _opt("max_attempts", "--max-attempts"),
    algorithm: str = _opt("algorithm", "--algorithm"),
    retention: float = _opt("retention", "--retention"),
    no_prune: Annotated[bool, typer.Option("--no-prune", help="do not run the pruner here")] = False,
) -> None:
    """Create the sweep (or resume one) and plan it to the end with local workers and pruner."""
    from sweepq import launch as planmod
    from sweepq.model import random_seed

    if (path is None) == (resume is None):
        raise SweepqError("give a sweep config path, or --resume SWEEP_ID")
    settings = Settings(
        seed=random_seed() if seed is None else seed,
        heartbeat_timeout=heartbeat_timeout,
        grace=grace,
        time_limit=time_limit,
        max_attempts=max_attempts,
        algorithm=algorithm,
        retention=retention,
    )
    opts = planmod.PlanOptions(
        redis=redis_url, workers=workers, count=count, prune=not no_prune, queue=queue, settings=settings
    )
    sweep_id, url = planmod.create(path, resume=resume, opts=opts)
    typer.echo(sweep_id)
    sys.stdout.flush()
    if detach:
        log = planmod.detach(sweep_id, url=url, opts=opts)
        typer.echo(
            f"planning sweep {sweep_id} in the background; its log: {log}\n"
            f"`sweepq status {sweep_id}` shows progress, `sweepq stop {sweep_id}` ends it",
            err=True,
        )
        return
    outcome = planmod.run(sweep_id, url=url, opts=opts)
    raise typer.Exit(_plan_ended(outcome))


def _plan_ended(outcome: Any) -> int:
    """The last words of `plan`, and its exit code: 0 the sweep ended, 3 it needs a person,
    130 interrupted (the sweep itself goes on; `--resume` continues planning it)."""
    sweep = outcome.sweep
    again = f"sweepq plan --resume {sweep.id}"
    if outcome.why == "stalled":
        typer.echo(f"sweep {sweep.id} cannot go on by itself: {outcome.message}", err=True)
        typer.echo(f"to continue (after fixing the cause): {again}", err=True)
        return 3
    if outcome.why == "interrupted":
        typer.echo(
            f"interrupted: sweep {sweep.id} is {sweep.state} with {sweep.counts['queued']} queued trials; "
            f"to continue planning it: {again}",
            err=True,
        )
        return 130
    typer.echo(f"sweep {sweep.id} {sweep.state}" + (f": {sweep.state_reason}" if sweep.state_reason else ""), err=True)
    return 0


@app.command()
@_guard
def status(
    sweep_id: Annotated[Optional[str], typer.Argument(help="sweep id (omit for all)")] = None,  # noqa: UP045
    redis_url: RedisOpt = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="a live table until the sweep ends")] = False,
    interval: Annotated[float, typer.Option("--interval", help="seconds between refreshes with --watch")] = 2.0,
) -> None:
    """A table of sweeps, or one sweep's counts, best trial and running trials."""
    from rich.console import Console

    from sweepq import report
    from sweepq.report.data import load_view

    store = _store(redis_url)
    if sweep_id is None:
        Console().print(report.sweeps_table(store))
    elif watch:
        from sweepq.report.watch import watch as watch_sweep

        watch_sweep(store, sweep_id, interval=interval)
    else:
        Console().print(report.sweep_table(load_view(store, sweep_id), width=_width()))


@app.command()
@_guard
def trials(
    sweep_id: SweepArg,
    redis_url: RedisOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON array")] = False,
) -> None:
    """Every trial of a sweep: state, params, last/best metric, attempts, reason."""
    from sweepq.report.data import load_view

    view = load_view(_store(redis_url), sweep_id)
    if as_json:
        typer.echo(json.dumps([t.as_dict() for t in view.trials], indent=1))
    else:
        from rich.console import Console

        from sweepq import report

        Console().print(report.trials_table(view, width=_width()))


@app.command()
@_guard
def logs(
    sweep_id: SweepArg,
    trial: Annotated[int, typer.Argument(help="trial number")],
    redis_url: RedisOpt = None,
    tail: Annotated[int, typer.Option("--tail", help="lines")] = 100,
) -> None:
    """The last lines a trial's program printed."""
    store = _store(redis_url)
    store.sweep(sweep_id)  # "no sweep X" / "no trial N in sweep X" rather than silence
    store.trial(sweep_id, trial)
    lines = store.output(sweep_id, trial, tail=tail)
    for line in lines:
        typer.echo(line)
    if not lines:
        typer.echo(f"trial {trial} has printed nothing yet", err=True)


@app.command()
@_guard
def stop(sweep_id: SweepArg, redis_url: RedisOpt = None) -> None:
    """No new trials: queued ones are cancelled, running ones finish."""
    from sweepq import control

    n = control.stop(_store(redis_url), sweep_id)
    typer.echo(f"sweep {sweep_id} stopped; {n} queued trials cancelled", err=True)


@app.command()
@_guard
def cancel(sweep_id: SweepArg, redis_url: RedisOpt = None) -> None:
    """Queued trials cancelled, running ones killed."""
    from sweepq import control

    cancelled, killed = control.cancel(_store(redis_url), sweep_id)
    typer.echo(f"sweep {sweep_id} cancelled; {cancelled} queued cancelled, {killed} killed", err=True)


@app.command()
@_guard
def pause(sweep_id: SweepArg, redis_url: RedisOpt = None) -> None:
    """No trial starts until `sweepq resume`."""
    from sweepq import control

    control.pause(_store(redis_url), sweep_id)
    typer.echo(f"sweep {sweep_id} paused", err=True)


@app.command()
@_guard
def resume(sweep_id: SweepArg, redis_url: RedisOpt = None) -> None:
    """Let a paused (or stopped) sweep start trials again."""
    from sweepq import control

    control.resume(_store(redis_url), sweep_id)
    typer.echo(f"sweep {sweep_id} resumed", err=True)


@app.command()
@_guard
def kill(
    sweep_id: SweepArg, trial: Annotated[int, typer.Argument(help="trial number")], redis_url: RedisOpt = None
) -> None:
    """Stop one trial: a running one ends killed, a queued one cancelled."""
    from sweepq import control

    store = _store(redis_url)
    store.sweep(sweep_id)
    typer.echo(f"trial {trial}: {control.kill_trial(store, sweep_id, trial)}", err=True)


@app.command()
@_guard
def rerun(
    sweep_id: SweepArg,
    trial: Annotated[Optional[list[int]], typer.Argument(help="trial numbers")] = None,  # noqa: UP045
    failed: Annotated[bool, typer.Option("--failed", help="every failed, crashed or killed trial")] = False,
    redis_url: RedisOpt = None,
) -> None:
    """Run failed or chosen trials again with the same parameters."""
    from sweepq import control

    store = _store(redis_url)
    queued = control.rerun(store, sweep_id, trial or [], failed=failed)
    typer.echo(f"queued again: {' '.join(map(str, queued)) or 'none'}", err=True)
    holder = store.lease_holder(sweep_id, "planner")
    if queued and holder is None:
        typer.echo(
            f"no planner is running for sweep {sweep_id}: `sweepq plan --resume {sweep_id}` runs these trials "
            "(with local workers on the embedded server), records their results and ends the sweep",
            err=True,
        )
    elif queued:
        typer.echo(f"the running planner ({holder}) picks them up", err=True)


@app.command()
@_guard
def prune(sweep_id: SweepArg, redis_url: RedisOpt = None) -> None:
    """Run the pruner alone for a sweep (when `plan` runs with --no-prune or elsewhere)."""
    from sweepq.pruner import Pruner
    from sweepq.server import connect
    from sweepq.store import Store

    _store(redis_url).sweep(sweep_id)  # never start a server here, and say so for an unknown sweep
    pruner = Pruner(Store(connect(redis_url, long_running=True)), sweep_id)
    if not pruner.enabled:
        raise SweepqError(f"sweep {sweep_id} has no early_terminate section")
    pruner.run()


@app.command()
@_guard
def report(
    sweep_id: SweepArg,
    redis_url: RedisOpt = None,
    out: Annotated[str, typer.Option("-o", "--out", help="HTML file")] = "",
) -> None:
    """Write an HTML report: parallel coordinates, parameter importance, history."""
    from pathlib import Path

    from sweepq import report as rep

    target = Path(out or f"sweep-{sweep_id}.html")
    target.write_text(rep.html_report(_store(redis_url), sweep_id), encoding="utf-8")
    typer.echo(str(target))


@app.command()
@_guard
def key(
    generate: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--generate", help="write a new secret to this file (mode 0600) and use it"),
    ] = None,
) -> None:
    """Print the public key that workers must trust (SWEEPQ_TRUSTED_KEYS) for sweeps made here.

    The key pair comes from the owner's secret: --secret-file, $SWEEPQ_SECRET, $SWEEPQ_SECRET_FILE,
    else .sweepq/signing.key (or under $SWEEPQ_HOME), generated the first time."""
    import os

    from sweepq import trust

    if generate:
        path = os.path.abspath(generate)
        if os.path.exists(path):
            raise SweepqError(f"--generate: {path} exists; remove it first or use it with --secret-file")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(trust.new_secret() + "\n")
        os.environ.pop(trust.ENV_SECRET, None)
        os.environ[trust.ENV_SECRET_FILE] = path
        typer.echo(f"wrote a new secret to {path}; planners use it with SWEEPQ_SECRET_FILE={path}", err=True)
    signer = trust.Signer.load(create=True)
    assert signer is not None
    typer.echo(signer.public.text)


@app.command()
@_guard
def delete(
    sweep_id: SweepArg,
    redis_url: RedisOpt = None,
    force: Annotated[bool, typer.Option("--force", help="cancel queued and running trials first")] = False,
) -> None:
    """Remove a sweep and everything it stored (trials, metrics, output, its RQ jobs)."""
    from sweepq import control

    n = control.delete(_store(redis_url), sweep_id, force=force)
    typer.echo(f"sweep {sweep_id} deleted ({n} keys)", err=True)


@app.command()
@_guard
def dashboard(
    sweep_id: Annotated[Optional[str], typer.Argument(help="sweep id (omit for a list of sweeps)")] = None,  # noqa: UP045
    redis_url: RedisOpt = None,
    port: Annotated[int, typer.Option("--port", help="port on 127.0.0.1 (0 = any free one)")] = 8765,
) -> None:
    """Serve a live view on 127.0.0.1: running trials, curves as they arrive, pruning, best so far."""
    from sweepq import dashboard as dash

    store = _store(redis_url)
    if sweep_id is not None:
        store.sweep(sweep_id)
    dash.serve(store, sweep_id, port=port)


@app.command("sweep")
@_guard
def sweep_cmd(
    path: PathArg,
    redis_url: RedisOpt = None,
    project: Annotated[str | None, typer.Option("--project", help="recorded with the sweep (as wandb sweep)")] = None,  # noqa: UP045
    entity: Annotated[Optional[str], typer.Option("--entity", help="recorded with the sweep (as wandb sweep)")] = None,  # noqa: UP045
    queue: Annotated[str, typer.Option("--queue", help="RQ queue its jobs go to")] = "sweepq",
) -> None:
    """Create the sweep and print its id (as `wandb sweep`); run it with `sweepq agent ID`."""
    from sweepq.api import sweep as make_sweep
    from sweepq.server import resolve

    url = resolve(redis_url)
    sweep_id = make_sweep(path, project=project, entity=entity, redis=url, queue=queue)
    typer.echo(sweep_id)
    typer.echo(f"sweepq: run it here with: sweepq agent {sweep_id}", err=True)


@app.command("agent")
@_guard
def agent_cmd(
    sweep_id: SweepArg,
    redis_url: RedisOpt = None,
    count: Annotated[Optional[int], typer.Option("--count", help="run at most this many trials")] = None,  # noqa: UP045
    project: Annotated[Optional[str], typer.Option("--project", help="accepted, as in wandb agent")] = None,  # noqa: UP045
    entity: Annotated[Optional[str], typer.Option("--entity", help="accepted, as in wandb agent")] = None,  # noqa: UP045
) -> None:
    """Run trials of a sweep in this terminal (as `wandb agent`): it plans if no planner runs,
    else takes this sweep's queued trials as one more worker. Run it on as many boxes as you like."""
    from sweepq.api import agent

    if count is not None and count <= 0:
        raise SweepqError(f"--count: must be a positive integer ({count})")
    ran = agent(sweep_id, count=count, project=project, entity=entity, redis=redis_url)
    typer.echo(f"sweepq: agent ran {ran} trial{'s' if ran != 1 else ''} of sweep {sweep_id}", err=True)


@app.command("server-stop")
@_guard
def server_stop() -> None:
    """Stop the embedded server of this directory (data stays in .sweepq/)."""
    from sweepq.server import stop_embedded

    typer.echo("stopped" if stop_embedded() else "no embedded server running", err=True)


def main() -> None:
    """Entry point: SweepqError anywhere becomes one clean message and exit code 2."""
    try:
        app()
    except SweepqError as err:  # pragma: no cover - commands catch their own
        for line in str(err).splitlines():
            print(line, file=sys.stderr)
        sys.exit(2)
