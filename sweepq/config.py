"""Sweep config (W&B's language) -> frozen SweepConfig, with every violation and its key path.

A config is checked whole: a person fixing one file should see every problem in one run, each
located like `parameters.lr.max`, and never a traceback. The rules are W&B's schema
(`additionalProperties: false` everywhere) plus the checks its engine does in code.
"""

from __future__ import annotations

import copy
import difflib
import math
import numbers
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sweepq import bounded
from sweepq.errors import ConfigError, PathPart, Violation
from sweepq.model import Metric
from sweepq.space import Distribution, Path, Space, build, dotted

if TYPE_CHECKING:
    from sweepq.stopping import StoppingRule

__all__ = [
    "DEFAULT_COMMAND",
    "GOALS",
    "MAX_GRID",
    "METHODS",
    "EarlyTerminate",
    "Metric",
    "SweepConfig",
    "load",
    "parse",
    "to_yaml",
]

METHODS = ("grid", "random", "bayes")
# Every grid point is planned up front; a grid this large would never finish anyway.
MAX_GRID = 1_000_000
GOALS = ("minimize", "maximize")
DEFAULT_COMMAND: tuple[str, ...] = ("${env}", "${interpreter}", "${program}", "${args}")

_TEXT_KEYS = ("program", "name", "description", "project", "entity")
_KEYS = ("method", "metric", "parameters", "early_terminate", "command", "run_cap", *_TEXT_KEYS)
# W&B keys that change nothing here: accepted with a warning, so W&B files load unchanged.
_IGNORED = ("apiVersion", "kind", "controller")
_UNSUPPORTED = {
    "metrics": "multi-objective sweeps (W&B's method: custom) are not supported",
    "scheduler": "custom schedulers (W&B's method: custom) are not supported",
    "job": "W&B Launch jobs are not supported; use program and command",
    "image_uri": "W&B Launch images are not supported; use program and command",
}
_LAUNCH = ("job", "image_uri")
_METRIC_KEYS = ("name", "goal", "target", "impute", "impute_while_running")
_ET_KEYS = {
    "hyperband": ("type", "min_iter", "max_iter", "s", "eta", "strict"),
    "asha": ("type", "min_iter", "max_iter", "eta"),
}
_ENVVAR = re.compile(r"\$\{envvar:[A-Z0-9_]*\}")
_MACRO = re.compile(r"\$\{[^}]*\}")
# YAML 1.2 floats without a dot (1e-4), which YAML 1.1 and so PyYAML read as strings.
_EXP_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


@dataclass(frozen=True)
class EarlyTerminate:
    """hyperband (W&B) or asha (our extension); strict only matters for hyperband."""

    type: str
    min_iter: int | None = None
    max_iter: int | None = None
    s: int | None = None
    eta: float = 3
    strict: bool = True

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for key in ("min_iter", "max_iter", "s"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out["eta"] = self.eta
        if self.type == "hyperband":
            out["strict"] = self.strict
        return out


@dataclass(frozen=True, kw_only=True)
class SweepConfig:
    """A checked sweep. `to_dict()` is what the store keeps; `from_dict` reads it back."""

    method: str
    metric: Metric | None
    space: Space
    early_terminate: EarlyTerminate | None = None
    command: tuple[str, ...] = DEFAULT_COMMAND
    program: str | None = None
    name: str | None = None
    description: str | None = None
    project: str | None = None
    entity: str | None = None
    run_cap: int | None = None
    warnings: tuple[str, ...] = field(default=(), compare=False)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Normalized and JSON-able: explicit distributions, defaults filled, groups kept."""
        out: dict[str, Any] = {}
        if self.program is not None:
            out["program"] = self.program
        out["method"] = self.method
        if self.metric is not None:
            out["metric"] = self.metric.to_dict()
        out["parameters"] = self.space.to_dict()
        if self.early_terminate is not None:
            out["early_terminate"] = self.early_terminate.to_dict()
        if self.run_cap is not None:
            out["run_cap"] = self.run_cap
        out["command"] = list(self.command)
        for key in ("name", "description", "project", "entity"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SweepConfig:
        return parse(data)

    def stopping_rule(self) -> StoppingRule | None:
        """The early_terminate rule, ready for the pruner (None without one)."""
        from sweepq.stopping import Rule

        if self.early_terminate is None or self.metric is None:
            return None
        return Rule.from_config(self.early_terminate).build(self.metric.goal)

    @classmethod
    def from_normalized(cls, data: Mapping[str, Any]) -> SweepConfig:
        """Read back `to_dict()` output without checking it again: it was validated when the
        sweep was created, and a rule tightened in a later version must not fail a stored sweep
        (nor cost a whole validation per trial)."""
        metric = data.get("metric")
        rule = data.get("early_terminate")
        return cls(
            method=str(data["method"]),
            metric=None if metric is None else Metric.from_dict(metric),
            space=Space.from_normalized(data["parameters"]),
            early_terminate=None if rule is None else EarlyTerminate(**rule),
            command=tuple(data.get("command") or DEFAULT_COMMAND),
            run_cap=data.get("run_cap"),
            raw=dict(data),
            program=data.get("program"),
            name=data.get("name"),
            description=data.get("description"),
            project=data.get("project"),
            entity=data.get("entity"),
        )


# ---------------------------------------------------------------------------------------------
# Reading files.


def to_yaml(config: SweepConfig) -> str:
    """The normalized config as YAML that `load` reads back to the same config.

    Strings such as "1e-5" are quoted: PyYAML's own dumper would leave them bare, and our loader
    reads a bare 1e-5 as a float.
    """
    import yaml  # type: ignore[import-untyped,unused-ignore]

    class Dumper(yaml.SafeDumper):  # type: ignore[misc,unused-ignore]
        pass

    Dumper.add_implicit_resolver("tag:yaml.org,2002:float", _EXP_FLOAT, list("-+0123456789."))
    return str(yaml.dump(config.to_dict(), Dumper=Dumper, sort_keys=False))


def _parse_text(text: str, origin: str, *, as_json: bool) -> Any:
    """Text -> data within `sweepq.bounded`'s limits; a syntax error is one violation with its line.

    YAML reads 1e-4 as a float (YAML 1.2; PyYAML alone reads a string) and refuses duplicate
    keys (PyYAML alone keeps the last one silently).
    """
    if as_json:
        return bounded.load_json(text, origin)
    return bounded.load_yaml(text, origin, [("tag:yaml.org,2002:float", _EXP_FLOAT, list("-+0123456789."))])


def load(source: str | os.PathLike[str] | Mapping[str, Any], *, require_program: bool | None = None) -> SweepConfig:
    """A .yaml/.yml/.json path, "-" for stdin, or a dict -> SweepConfig; raises ConfigError.

    `require_program` (see `parse`) defaults to True for a file or stdin, which is what
    `sweepq validate/preview/plan` read and workers run, and to False for a dict, which
    notebook mode (`sweepq.sweep` + `sweepq.agent(function=...)`) hands in without a program.
    """
    if isinstance(source, Mapping):
        return parse(source, require_program=bool(require_program))
    need = True if require_program is None else require_program
    if str(source) == "-":
        origin, text = "<stdin>", _read_stdin()
        # JSON or YAML, told apart by trying JSON: `{method: grid}` is YAML, not JSON.
        try:
            data = bounded.load_json(text, origin)
        except ConfigError:
            data = _parse_text(text, origin, as_json=False)
        return _parse_loaded(data, origin, need)
    origin = str(source)
    try:
        with open(source, encoding="utf-8") as fh:
            # One character past the limit is enough to refuse a file of any size.
            text = fh.read(bounded.MAX_BYTES + 1)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise ConfigError([Violation((origin,), f"cannot read: {reason}")]) from None
    as_json = origin.lower().endswith(".json")
    return _parse_loaded(_parse_text(text, origin, as_json=as_json), origin, need)


def _read_stdin() -> str:
    try:
        return sys.stdin.read(bounded.MAX_BYTES + 1)
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError([Violation(("<stdin>",), f"cannot read: {err}")]) from None


def _parse_loaded(data: Any, origin: str, require_program: bool) -> SweepConfig:
    if data is None:
        raise ConfigError([Violation((origin,), "the sweep config is empty")])
    return parse(data, require_program=require_program)


# ---------------------------------------------------------------------------------------------
# Checking.


def _plain(x: Any) -> Any:
    """Notebook input as JSON-like data: tuples -> lists, numpy scalars -> int/float."""
    if isinstance(x, Mapping):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (bool, str)) or x is None:
        return x
    if isinstance(x, numbers.Integral):
        return int(x)
    if isinstance(x, numbers.Real):
        return float(x)
    return x


def _kind(x: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "list"}
    if x is None:
        return "null"
    return "mapping" if isinstance(x, Mapping) else names.get(type(x), type(x).__name__)


def _got(x: Any) -> str:
    text = repr(x)
    text = text if len(text) <= 40 else text[:37] + "..."
    return "got null" if x is None else f"got {_kind(x)} {text}"


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _has_macro(text: str) -> bool:
    """`_MACRO.search(text)` in linear time: the regex retries every `${` to the end of the
    string, quadratic on a long run of `${` with no `}`."""
    start = text.find("${")
    return start >= 0 and text.find("}", start + 2) >= 0


def _one_of(value: Any, choices: tuple[str, ...]) -> str:
    shown = f"'{value}'" if isinstance(value, str) else repr(value)
    return f"{shown} is not one of {', '.join(choices)}"


class _Checker:
    """Collects every violation and warning of one config."""

    def __init__(self) -> None:
        self.problems: list[Violation] = []
        self.warnings: list[str] = []
        self.leaves: list[tuple[Path, Distribution, tuple[PathPart, ...]]] = []

    def bad(self, path: tuple[PathPart, ...], message: str) -> None:
        self.problems.append(Violation(path, message))

    def unknown_keys(self, data: Mapping[str, Any], allowed: tuple[str, ...], path: tuple[PathPart, ...]) -> None:
        for key in data:
            if key in allowed:
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {close[0]}?" if close else f"allowed: {', '.join(allowed)}"
            self.bad((*path, key), f"unknown key ({hint})")

    def integer(self, data: Mapping[str, Any], key: str, path: tuple[PathPart, ...], minimum: int) -> int | None:
        if key not in data:
            return None
        value = data[key]
        if not _is_int(value):
            self.bad((*path, key), f"must be an integer ({_got(value)})")
        elif value < minimum:
            self.bad((*path, key), f"must be at least {minimum} (got {value})")
        else:
            return int(value)
        return None

    def text(self, data: Mapping[str, Any], key: str, path: tuple[PathPart, ...]) -> str | None:
        if key not in data:
            return None
        value = data[key]
        if not isinstance(value, str):
            self.bad((*path, key), f"must be a string ({_got(value)})")
            return None
        return value

    # -- sections ------------------------------------------------------------------------------

    def top_level(self, data: Mapping[str, Any]) -> None:
        for key in data:
            if key in _IGNORED:
                self.warnings.append(f"{key}: W&B-only key, ignored")
            elif key in _LAUNCH and ("program" in data or "command" in data):
                # W&B runs program/command when both are given; the Launch key changes nothing here.
                self.warnings.append(f"{key}: W&B Launch key beside program/command, ignored")
            elif key in _UNSUPPORTED:
                self.bad((key,), _UNSUPPORTED[key])
        allowed = (*_KEYS, *_IGNORED, *_UNSUPPORTED)
        self.unknown_keys({k: v for k, v in data.items() if k not in allowed}, _KEYS, ())

    def method(self, data: Mapping[str, Any]) -> str:
        if "method" not in data:
            self.bad(("method",), f"required: one of {', '.join(METHODS)}")
            return ""
        value = data["method"]
        if value not in METHODS:
            self.bad(("method",), _one_of(value, METHODS))
            return ""
        return str(value)

    def metric(self, data: Mapping[str, Any]) -> Metric | None:
        if "metric" not in data:
            return None
        spec, path = data["metric"], ("metric",)
        if not isinstance(spec, Mapping):
            self.bad(path, f"must be a mapping with name and goal ({_got(spec)})")
            return None
        self.unknown_keys(spec, _METRIC_KEYS, path)
        name = self.text(spec, "name", path)
        if "name" not in spec:
            self.bad((*path, "name"), "required")
        elif name == "":
            self.bad((*path, "name"), "must not be empty")
        goal = spec.get("goal", "minimize")
        if goal not in GOALS:
            self.bad((*path, "goal"), _one_of(goal, GOALS))
        target = spec.get("target")
        if target is not None and not _is_number(target):
            self.bad((*path, "target"), f"must be a number ({_got(target)})")
        self._impute(spec, path)
        if not name or goal not in GOALS or (target is not None and not _is_number(target)):
            return None
        return Metric(name=name, goal=str(goal), target=target)

    def _impute(self, spec: Mapping[str, Any], path: tuple[PathPart, ...]) -> None:
        """W&B's bayes imputation knobs: checked, then ignored (failed trials count as worst)."""
        for key, choices, default in (
            ("impute", ("latest", "best", "worst"), "worst"),
            ("impute_while_running", ("latest", "best", "worst", "false"), "false"),
        ):
            if key not in spec:
                continue
            if spec[key] not in choices:
                self.bad((*path, key), _one_of(spec[key], choices))
            elif spec[key] != default:
                self.warnings.append(f"metric.{key}: ignored; sweepq uses {default}")

    def early_terminate(self, data: Mapping[str, Any]) -> EarlyTerminate | None:
        if "early_terminate" not in data:
            return None
        spec, path = data["early_terminate"], ("early_terminate",)
        if not isinstance(spec, Mapping):
            self.bad(path, f"must be a mapping with type: hyperband ({_got(spec)})")
            return None
        kind = spec.get("type")
        if not isinstance(kind, str) or kind not in _ET_KEYS:
            msg = "required: hyperband or asha" if "type" not in spec else _one_of(kind, ("hyperband", "asha"))
            self.bad((*path, "type"), msg)
            return None
        before = len(self.problems)
        self.unknown_keys(spec, _ET_KEYS[kind], path)
        min_iter = self.integer(spec, "min_iter", path, 1)
        max_iter = self.integer(spec, "max_iter", path, 1)
        s = self.integer(spec, "s", path, 1)
        if kind == "hyperband" and min_iter is not None and "max_iter" not in spec:
            s = None  # W&B builds the bands from min_iter and ignores s (warned in _et_bounds)
        eta = spec.get("eta", 3)
        if not _is_number(eta):
            self.bad((*path, "eta"), f"must be a number ({_got(eta)})")
        elif eta <= 1:
            self.bad((*path, "eta"), f"must be greater than 1 (got {eta})")
        strict = spec.get("strict", True)
        if not isinstance(strict, bool):
            self.bad((*path, "strict"), f"must be true or false ({_got(strict)})")
        if len(self.problems) > before:
            return None
        rule = EarlyTerminate(type=kind, min_iter=min_iter, max_iter=max_iter, s=s, eta=eta, strict=strict)
        return rule if self._et_bounds(rule, spec, path) else None

    def _et_bounds(self, rule: EarlyTerminate, spec: Mapping[str, Any], path: tuple[PathPart, ...]) -> bool:
        before = len(self.problems)
        if rule.type == "asha":
            if rule.min_iter is None:
                self.bad((*path, "min_iter"), "required for asha (the first rung)")
            elif rule.max_iter is not None and rule.max_iter <= rule.min_iter:
                self.bad((*path, "max_iter"), f"must be greater than min_iter ({rule.max_iter} <= {rule.min_iter})")
            return len(self.problems) == before
        if "min_iter" in spec and "s" in spec and "max_iter" not in spec:
            self.warnings.append("early_terminate.s: ignored: the bands come from min_iter (as in W&B)")
        elif "max_iter" in spec and "s" not in spec and "min_iter" not in spec:
            self.bad((*path, "s"), "required with max_iter (hyperband makes s bands below max_iter)")
        elif "s" in spec and "max_iter" not in spec:
            self.bad((*path, "max_iter"), "required with s")
        elif rule.max_iter is None and rule.min_iter is None:
            self.bad(path, "hyperband needs min_iter, or max_iter and s")
        elif rule.max_iter is not None and rule.max_iter / rule.eta < 1:
            self.bad((*path, "max_iter"), f"gives no bands: max_iter / eta < 1 ({rule.max_iter} / {rule.eta})")
        return len(self.problems) == before

    def command(self, data: Mapping[str, Any]) -> tuple[str, ...]:
        value = data.get("command")
        if value is None and "command" not in data:
            return DEFAULT_COMMAND
        if not isinstance(value, list):
            self.bad(("command",), f"must be a list of strings ({_got(value)})")
            return DEFAULT_COMMAND
        value = [str(p) if _is_number(p) or isinstance(p, bool) else p for p in value]  # W&B's agent: str(c)
        for i, part in enumerate(value):
            if not isinstance(part, str):
                self.bad(("command", i), f"must be a string ({_got(part)})")
            elif not _MACRO.fullmatch(part) and _has_macro(_ENVVAR.sub("", part)):
                self.warnings.append(
                    f"command.{i}: {part!r}: only an element that is wholly a macro is "
                    "replaced; this one is passed as written"
                )
        from sweepq.trust import shell_warning

        if shell := shell_warning([p for p in value if isinstance(p, str)]):
            self.warnings.append(shell)
        # W&B runs its default command when the list is empty.
        return tuple(value) if value else DEFAULT_COMMAND

    def parameters(self, spec: Any, path: tuple[PathPart, ...], prefix: Path) -> None:
        if not isinstance(spec, Mapping):
            self.bad(path, f"must be a mapping of parameter names to specs ({_got(spec)})")
            return
        if not spec:
            self.bad(path, "must name at least one parameter")
        for name, pspec in spec.items():
            where = (*path, name)
            if not Space.valid_name(name):
                self.bad(where, f"invalid parameter name {name!r}: must match ^[A-Za-z_][A-Za-z0-9_.-]*$")
                continue
            if isinstance(pspec, Mapping) and "parameters" in pspec:
                for key in pspec:
                    if key != "parameters":
                        self.bad((*where, key), "a nested group holds only `parameters`")
                self.parameters(pspec["parameters"], (*where, "parameters"), (*prefix, name))
                continue
            try:
                dist = build(pspec, path=where)
            except ConfigError as err:
                self.problems.extend(err.violations)
                continue
            self.leaves.append(((*prefix, name), dist, where))
            if dist.deprecated_by:
                self.warnings.append(
                    f"{dotted(tuple(map(str, where)))}: {dist.name} reads min/max as natural-log "
                    f"exponents (deprecated); use {dist.deprecated_by} to give the values"
                )

    def grid(self) -> None:
        before = len(self.problems)
        for _, dist, where in self.leaves:
            if dist.name == "categorical_w_probabilities":
                self.bad((*where, "probabilities"), "cannot be used with method: grid")
            elif not dist.grid_ok:
                self.bad(
                    where,
                    f"{dist.name} cannot be used with method: grid (grid takes "
                    "values, value, int_uniform or q_uniform)",
                )
        if len(self.problems) > before:
            return
        size = math.prod(dist.grid_count() for _, dist, _ in self.leaves)
        if size > MAX_GRID:
            self.bad(("parameters",), f"the grid has {size:,} points; sweepq runs at most {MAX_GRID:,}")


def parse(data: Mapping[str, Any], *, require_program: bool = False) -> SweepConfig:
    """Check a whole config; ConfigError carries every violation, each with its key path.

    With `require_program`, a command that runs `${program}` (W&B's default command does)
    needs `program`: without it every trial would fail on a worker. Notebook mode runs a
    function instead, so the check is the caller's choice (`load` makes it for files).
    """
    if not isinstance(data, Mapping):
        raise ConfigError([Violation((), f"a sweep config must be a mapping ({_got(data)})")])
    bounded.check_shape(data)
    raw = copy.deepcopy(dict(data))
    data = _plain(data)
    c = _Checker()
    c.top_level(data)
    method = c.method(data)
    metric = c.metric(data)
    rule = c.early_terminate(data)
    command = c.command(data)
    texts = {key: c.text(data, key, ()) for key in _TEXT_KEYS}
    run_cap = c.integer(data, "run_cap", (), 1)
    if "parameters" not in data:
        c.bad(("parameters",), "required: at least one parameter")
    else:
        c.parameters(data["parameters"], ("parameters",), ())
    if method == "grid":
        c.grid()
    if "metric" not in data and method == "bayes":
        c.bad(("metric",), "required when method is bayes")
    if "metric" not in data and "early_terminate" in data:
        c.bad(("metric",), "required by early_terminate")
    if require_program and "program" not in data and "${program}" in command:
        which = "the default command" if command == DEFAULT_COMMAND else "the command"
        c.bad(("program",), f"required: {which} runs ${{program}} (or give a command without it)")
    if c.problems:
        raise ConfigError(c.problems)
    return SweepConfig(
        method=method,
        metric=metric,
        space=Space(tuple((path, dist) for path, dist, _ in c.leaves)),
        early_terminate=rule,
        command=command,
        run_cap=run_cap,
        warnings=tuple(c.warnings),
        raw=raw,
        **texts,
    )
