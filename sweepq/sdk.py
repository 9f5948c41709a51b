"""The program's side, shaped like wandb's so `import sweepq as wandb` runs a W&B sweep script.

Inside a trial (the runner sets SWEEPQ_* in the environment) `init()` loads the trial's
parameters and `log()` hands each row to the runner without waiting, as wandb's does; the
runner's answer, read at the next `log()`, carries any stop request, so a pruned trial learns it
on its next `log()` but one as a `Stopped` exception (catch it to save a checkpoint; the runner
also sends SIGTERM at once). Outside a sweep everything works in memory, so scripts stay
runnable by hand.
"""

import atexit
import os
import time

# The same classes as collections.abc's, from the module Python's start-up has already loaded:
# `collections.abc` imports `collections` (~3 ms), in every trial program.
from _collections_abc import Iterator, Mapping, MutableMapping

TYPE_CHECKING = False  # not `typing`'s: every trial program imports this module (~2 ms saved)
if TYPE_CHECKING:
    from typing import Any

    from sweepq.link import TrialLink

    _ConfigBase = MutableMapping[str, Any]
    _DictBase = dict[str, Any]
else:
    _ConfigBase, _DictBase = MutableMapping, dict

__all__ = ["Config", "Run", "Stopped", "Summary", "config_dict", "current", "finish", "finish_current", "init", "log"]


class Stopped(Exception):  # noqa: N818 - the name users catch, as in "the trial was stopped"
    """The sweep asked this trial to stop (pruned, killed, or superseded). Catch it to save a
    checkpoint; the runner ends the program after its grace period either way."""


class Config(_ConfigBase):
    """Parameters with item and attribute access; nested groups are Configs too."""

    def __init__(self, data: "Mapping[str, Any] | None" = None) -> None:
        object.__setattr__(self, "_data", {})
        self.update(data or {})

    def __getitem__(self, key: str) -> "Any":
        return self._data[key]

    def __setitem__(self, key: str, value: "Any") -> None:
        self._data[key] = _Group(value) if isinstance(value, Mapping) else value

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def __iter__(self) -> "Iterator[str]":
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, key: str) -> "Any":
        try:
            return self._data[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key: str, value: "Any") -> None:
        self[key] = value

    def __repr__(self) -> str:
        return f"Config({self.as_dict()!r})"

    def update(self, *args: "Any", allow_val_change: "bool | None" = None, **kwargs: "Any") -> None:
        """Merge, nested groups included (wandb's `allow_val_change` is accepted and ignored);
        like wandb, takes a dict, an argparse Namespace or any object with attributes."""
        for key, value in {**(config_dict(args[0]) if args else {}), **kwargs}.items():
            current = self._data.get(key)
            if isinstance(current, _Group) and isinstance(value, Mapping):
                current.merge(value)
            else:
                self[key] = value

    def setdefaults(self, defaults: "Any") -> None:
        """wandb's `config.setdefaults`: set only the keys not already there (a sweep's win)."""
        for key, value in config_dict(defaults).items():
            if key not in self._data:
                self[key] = value

    def persist(self) -> None:
        """wandb's `config.persist()`: nothing to write here (the trial's parameters are in Redis)."""

    def as_dict(self) -> "dict[str, Any]":
        return {k: v.as_dict() if isinstance(v, _Group) else v for k, v in self._data.items()}


class _Group(_DictBase):
    """A nested parameter group: a real dict (as in wandb.config, so json.dumps works) that also
    has attribute access (`config.optimizer.lr`)."""

    def __init__(self, data: "Mapping[str, Any]") -> None:
        super().__init__({k: _Group(v) if isinstance(v, Mapping) else v for k, v in data.items()})

    def __getattr__(self, key: str) -> "Any":
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key: str, value: "Any") -> None:
        self[key] = _Group(value) if isinstance(value, Mapping) else value

    def merge(self, data: "Mapping[str, Any]") -> None:
        for key, value in data.items():
            current = self.get(key)
            if isinstance(current, _Group) and isinstance(value, Mapping):
                current.merge(value)
            else:
                self[key] = _Group(value) if isinstance(value, Mapping) else value

    def as_dict(self) -> "dict[str, Any]":
        return {k: v.as_dict() if isinstance(v, _Group) else v for k, v in self.items()}


def config_dict(source: "Any") -> "dict[str, Any]":
    """What `init(config=)` takes in wandb: a mapping, a YAML/JSON file path (wandb's
    `{name: {value: v}}` files too), an argparse Namespace, or any object with attributes."""
    if source is None:
        return {}
    if isinstance(source, Mapping):
        return dict(source)
    if isinstance(source, (str, os.PathLike)):
        return _config_file(os.fspath(source))
    if hasattr(source, "__dict__"):
        return {k: v for k, v in vars(source).items() if not k.startswith("_")}
    raise TypeError(f"config must be a dict, a YAML path or an object with attributes, not {type(source).__name__}")


def _config_file(path: str) -> "dict[str, Any]":
    import yaml  # type: ignore[import-untyped,unused-ignore]

    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, Mapping):
        raise TypeError(f"{path}: a config file must hold a mapping")
    data = {k: v for k, v in data.items() if k not in ("wandb_version", "_wandb")}
    # wandb's config-defaults.yaml form: {name: {desc: ..., value: v}}
    return {k: v["value"] if isinstance(v, Mapping) and "value" in v else v for k, v in data.items()}


class Summary(_DictBase):
    """`run.summary`: the last value of every key, or what `define_metric(summary=)` asks for."""

    def __init__(self) -> None:
        super().__init__()
        self._rules: list[tuple[str, tuple[str, ...], str]] = []
        self._seen: dict[str, dict[str, float]] = {}

    def __getattr__(self, key: str) -> "Any":
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key: str, value: "Any") -> None:
        if key.startswith("_"):
            object.__setattr__(self, key, value)
        else:
            self[key] = value

    def define(self, name: str, aggregations: "tuple[str, ...]", goal: str) -> None:
        self._rules.insert(0, (name, aggregations, goal))

    def _rule(self, key: str) -> "tuple[tuple[str, ...], str] | None":
        for name, aggs, goal in self._rules:
            if key == name:
                return aggs, goal
            if "*" in name or "?" in name or "[" in name:
                import fnmatch  # only for a glob: it imports `re` (~4 ms of a trial's start)

                if fnmatch.fnmatchcase(key, name):
                    return aggs, goal
        return None

    def _record(self, row: "Mapping[str, Any]") -> None:
        for key, value in row.items():
            rule = self._rule(key)
            if rule is None:
                self[key] = value
                continue
            aggs, goal = rule
            number = _number(value)
            if number is None or not aggs:
                continue
            seen = self._seen.setdefault(key, {"count": 0, "sum": 0.0})
            seen["count"] += 1
            seen["sum"] += number
            seen["last"] = number
            seen.setdefault("first", number)
            seen["min"] = min(seen.get("min", number), number)
            seen["max"] = max(seen.get("max", number), number)
            out = {}
            for agg in aggs:
                if agg == "mean":
                    out["mean"] = seen["sum"] / seen["count"]
                elif agg == "best":
                    out["best"] = seen["max"] if goal.startswith("max") else seen["min"]
                else:
                    out[agg] = seen[agg]
            self[key] = out


class Run:
    """One trial attempt as the program sees it (or a standalone run outside any sweep)."""

    def __init__(
        self,
        config: "Mapping[str, Any]",
        *,
        name: "str | None" = None,
        project: "str | None" = None,
        entity: "str | None" = None,
        dir: "str | None" = None,  # noqa: A002 - wandb's keyword
        tags: "Any" = None,
        notes: "str | None" = None,
        group: "str | None" = None,
        job_type: "str | None" = None,
    ) -> None:
        self.config = Config(config)
        self.summary = Summary()
        self.history: list[dict[str, Any]] = []
        self.name = name
        self.id = name or f"local-{os.getpid()}"
        self.sweep_id: str | None = None
        self.number: int | None = None
        self.project = project or os.environ.get("WANDB_PROJECT") or "uncategorized"
        self.entity = entity or os.environ.get("WANDB_ENTITY")
        self.tags: tuple[str, ...] = tuple(tags or ())
        self.notes, self.group, self.job_type = notes, group, job_type
        self.url: str | None = None  # no W&B server: there is no page for this run
        self.mode = "sweepq"
        self.offline = False
        self.disabled = False
        self.resumed = False
        self.start_time = time.time()
        self._dir_base = dir or os.environ.get("WANDB_DIR")
        self._dir: str | None = None
        self._pending: dict[str, Any] = {}
        self._step = 0
        self._finished = False
        self._link: TrialLink | None = None
        self._metric: str | None = None
        self._attempt = 0
        self._stop_checked = 0.0
        self._stop = False

    @property
    def dir(self) -> str:
        """A real folder for files the script writes next to the run (made on first use)."""
        if self._dir is None:
            import tempfile

            if self._dir_base:
                path = os.path.join(self._dir_base, "sweepq", f"run-{self.id}", "files")
                os.makedirs(path, exist_ok=True)
                self._dir = path
            else:
                self._dir = tempfile.mkdtemp(prefix=f"sweepq-run-{self.id}-")
        return self._dir

    @property
    def path(self) -> str:
        return "/".join(p for p in (self.entity, self.project, self.id) if p)

    def get_url(self) -> "str | None":
        return self.url

    def get_project_url(self) -> "str | None":
        return None

    def get_sweep_url(self) -> "str | None":
        return None

    def define_metric(
        self,
        name: str,
        step_metric: "Any" = None,
        step_sync: "bool | None" = None,
        hidden: "bool | None" = None,
        summary: "str | None" = None,
        goal: "str | None" = None,
        overwrite: "bool | None" = None,
    ) -> "Any":
        """wandb's define_metric: `summary=` ("min", "max", "mean", "first", "last", "best",
        "none", comma-separated) and `goal=` shape `run.summary[name]`; the rest is accepted."""
        from sweepq import wandb_compat

        if summary is not None:
            aggs = tuple(a.strip() for a in summary.split(",") if a.strip() and a.strip() != "none")
            self.summary.define(name, aggs, goal or "minimize")
        return wandb_compat.Metric(name, step_metric=step_metric, summary=summary, goal=goal)

    def save(self, glob_str: "Any" = None, base_path: "Any" = None, policy: str = "live") -> bool:
        """Accepted and ignored: files stay where the script wrote them."""
        return True

    def log_artifact(self, artifact: "Any", name: "str | None" = None, type: "str | None" = None, **_: "Any") -> "Any":  # noqa: A002
        return artifact

    def use_artifact(self, artifact_or_name: "Any", type: "str | None" = None, **_: "Any") -> "Any":  # noqa: A002
        from sweepq import wandb_compat

        return wandb_compat.use_artifact(artifact_or_name, type=type)

    def link_artifact(self, *args: "Any", **kwargs: "Any") -> None:
        return None

    def log_code(self, *args: "Any", **kwargs: "Any") -> None:
        return None

    def log_model(self, *args: "Any", **kwargs: "Any") -> None:
        return None

    def watch(self, *args: "Any", **kwargs: "Any") -> None:
        return None

    def unwatch(self, *args: "Any", **kwargs: "Any") -> None:
        return None

    def alert(self, title: str = "", text: str = "", level: "Any" = None, wait_duration: "Any" = None) -> None:
        """Printed to stderr (there is no W&B to notify): the trial's output keeps it."""
        import sys

        print(f"wandb alert: {title}: {text}", file=sys.stderr)

    def status(self) -> None:
        return None

    # --- wandb-shaped API ---------------------------------------------------------------------

    def log(self, data: "Mapping[str, Any]", step: "int | None" = None, commit: "bool | None" = None) -> None:
        """Record one row, with wandb's rules: rows merge until committed; `commit` defaults to
        True without `step` and False with it; a larger `step` commits the pending row first;
        a step below the current one is ignored with a warning."""
        if self._finished:
            raise RuntimeError("log() after finish()")
        if step is not None:
            step = int(step)
            if step < self._step:
                _warn_once(f"sweepq: log(step={step}) is below the current step {self._step}; ignored (as in wandb)")
                return
            if step > self._step and self._pending:
                self._commit()
            self._step = step
        self._pending.update(data)
        if commit if commit is not None else step is None:
            self._commit()

    @property
    def step(self) -> int:
        """The step the next committed row gets (wandb's `run.step`)."""
        return self._step

    def _commit(self) -> None:
        row, self._pending = _plain_row(self._pending), {}
        self.history.append(row)
        self.summary._record(row)
        step_now = self._step
        self._step += 1
        if self._link is not None:
            self._send(row, step_now)

    def finish(self, exit_code: "int | None" = None) -> None:
        if self._finished:
            return
        if self._pending:
            self._commit()
        self._finished = True
        if self._link is not None:
            from sweepq.link import to_json  # json.dumps(default=str) without json and re

            self._link.finish(to_json(self.summary))

    @property
    def should_stop(self) -> bool:
        """Check for a stop request without raising (asks at most every 0.2 s)."""
        if self._link is None or self._stop:
            return self._stop
        now = time.monotonic()
        if now - self._stop_checked > 0.2:
            self._stop_checked = now
            self._stop = self._link.must_stop()
        return self._stop

    def mark_preempting(self) -> None:
        """Say this run is being preempted: when it exits it is queued again, not failed."""
        if self._link is not None:
            self._link.annotate(preempting=1)

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc: "Any") -> None:
        self.finish()

    # --- inside a sweep -----------------------------------------------------------------------

    def _attach(self, link: "TrialLink") -> None:
        trial = link.attach()
        self._link = link
        self.sweep_id, self.number, self._attempt = trial.sweep_id, trial.number, trial.attempt
        self._metric = trial.metric
        self.project = trial.project or self.project
        self.entity = trial.entity or self.entity
        self.id = os.environ.get("WANDB_RUN_ID") or f"{self.sweep_id}-{self.number}-{self._attempt}"
        self.name = self.name or f"{self.sweep_id}-{self.number}"
        self.config.update(trial.params)  # sweep parameters override the script's defaults
        if not trial.marked:
            link.annotate(sdk=1)

    def _send(self, row: "Mapping[str, Any]", step: int) -> None:
        assert self._link is not None
        value = _number(_lookup(row, self._metric)) if self._metric else None
        state, stop = self._link.log(step, row, value)
        if self._stop and not stop and state == "running":
            # `should_stop` learned it first: the row's own answer says why (worth the wait now).
            state, stop = self._link.latest()
        if stop or state != "running" or self._stop:
            self._stop = True
            why = {"prune": "pruned", "kill": "killed", "cancel": "cancelled"}.get(stop, state)
            raise Stopped(f"trial {self.id} was stopped ({why if why != 'running' else 'asked to stop'})")


def _lookup(row: "Mapping[str, Any]", name: str) -> "Any":
    """The metric by its exact key, else by a dotted path into nested dicts."""
    if name in row:
        return row[name]
    node: Any = row
    for part in name.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _number(value: "Any") -> "float | None":
    """A finite number for decisions; anything else (strings, NaN, tensors of many) is None."""
    if isinstance(value, bool) or value is None:
        return None
    if not isinstance(value, (int, float)):
        # `numbers` only here: most logs are plain floats, and the module costs every SDK
        # trial ~0.6 ms to import.
        import numbers

        if hasattr(value, "item") and not isinstance(value, numbers.Number):
            try:
                value = value.item()
            except (ValueError, TypeError, RuntimeError):  # torch: "a Tensor with 2 elements"
                return None
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return None
    f = float(value)
    return f if f == f and f not in (_INF, -_INF) else None


_INF = float("inf")


_current: "Run | None" = None
_warned: "set[str]" = set()


def _warn_once(message: str) -> None:
    import sys

    if message not in _warned:
        _warned.add(message)
        print(message, file=sys.stderr)


def _plain_row(row: "Mapping[str, Any]") -> "dict[str, Any]":
    """A logged row as JSON-able data: numbers (numpy/torch scalars too), strings, nested
    dicts; media and other objects become a short text such as `<Table>`."""
    return {str(k): _plain_value(v) for k, v in row.items()}


def _plain_value(value: "Any") -> "Any":
    if value is None or isinstance(value, (bool, str, int, float)):
        return value
    if isinstance(value, Mapping):
        return _plain_row(value)
    number = _number(value)
    if number is not None:
        return number
    if isinstance(value, (list, tuple)) and len(value) <= 20 and all(isinstance(v, (int, float)) for v in value):
        return list(value)
    return f"<{type(value).__name__}>"


def current() -> "Run | None":
    """The run of this process, if `init()` was called (also what `sweepq.run` gives)."""
    return _current


def init(
    config: "Any" = None,
    *,
    name: "str | None" = None,
    project: "str | None" = None,
    entity: "str | None" = None,
    dir: "str | None" = None,  # noqa: A002 - wandb's keyword
    tags: "Any" = None,
    notes: "str | None" = None,
    group: "str | None" = None,
    job_type: "str | None" = None,
    config_exclude_keys: "Any" = None,
    config_include_keys: "Any" = None,
    **_wandb_kwargs: "Any",
) -> "Run":
    """Start a run, as `wandb.init`: `config` is a dict, a YAML path, an argparse Namespace or
    any object with attributes; inside a sweep trial the trial's parameters override it.
    wandb's other keywords (mode, reinit, resume, settings, id, save_code...) are accepted."""
    global _current
    if _current is not None and not _current._finished:
        if config is not None:
            _current.config.setdefaults(config)
        return _current
    data = {**config_dict(config)}
    if config_include_keys:
        data = {k: v for k, v in data.items() if k in set(config_include_keys)}
    for key in config_exclude_keys or ():
        data.pop(key, None)
    run = Run(
        {**_preinit.as_dict(), **data},
        name=name,
        project=project,
        entity=entity,
        dir=dir,
        tags=tags,
        notes=notes,
        group=group,
        job_type=job_type,
    )
    _preinit.clear()
    from sweepq.link import link_from_env

    link = link_from_env()
    if link is not None:
        run._attach(link)
    _current = run
    return run


# What the script sets on `sweepq.config` before `init()` (wandb raises there; we keep it).
_preinit = Config()


def log(data: "Mapping[str, Any]", step: "int | None" = None, commit: "bool | None" = None) -> None:
    (_current or init()).log(data, step=step, commit=commit)


def finish(exit_code: "int | None" = None, quiet: "bool | None" = None) -> None:
    finish_current()


def finish_current() -> None:
    global _current
    if _current is not None:
        run, _current = _current, None
        run.finish()


atexit.register(finish_current)
