"""Early termination rules as pure functions: histories in, stop decisions out.

Nothing here reads or writes Redis: the pruner feeds the metric histories it has read and acts on
the returned :class:`Stop` records, so every rule is testable with plain lists (and checked
against W&B's own ``sweeps`` engine by golden rows).

Two rules:

``hyperband``
    W&B's rule, exactly (``sweeps/hyperband_stopping.py``). Bands come from ``max_iter`` + ``s``
    (``b = max_iter``; ``s`` times ``b /= eta``, stop when ``b < 1``, keep ``int(b)``; sorted) or
    from ``min_iter`` (``int(min_iter * eta**k)``). A run's history is its logged values of the
    metric with non-numeric and non-finite values dropped, negated when maximizing; the
    "iteration" is the position in that list, not the step. The threshold at band ``b`` is
    ``sorted(h[b-1] for every run with len(h) >= b)[int((1/eta) * n)]`` over runs in any state.
    Only running runs are judged, at the largest band ``<= len(h)``, with ``h[b-1]`` (strict) or
    ``min(h)`` (not strict); a run stops iff its value is greater than the threshold, so ties
    survive and a lone run is never stopped.

``asha`` (our extension)
    Asynchronous successive halving (Li et al. 2020) in its stopping form, as Optuna's
    ``SuccessiveHalvingPruner`` does it. Rungs are ``int(min_iter * eta**k)`` below ``max_iter``
    (a run that reached ``max_iter`` has spent its budget, so the paper makes no decision there),
    or the hyperband bands when only ``max_iter`` + ``s`` are given. A run's value at rung ``r`` is
    ``h[r-1]`` (strict) or ``min(h[:r])`` (not strict), oriented as above. A running run that
    reaches a rung continues iff its value is among the best ``max(1, floor(n / eta))`` of the
    ``n`` values recorded at that rung so far (its own included, runs in any state), ties
    surviving. With fewer than ``eta`` values only the best so far continues (the paper would
    pause the run until more arrive; a stopping rule cannot pause), so a lone run always
    continues. "So far" is every value at the rung in the histories given to the call. A decision
    is never revisited: :func:`evaluate` returns the promotions it made, the caller passes them
    back as ``promoted`` next time, and a run is never judged again at a rung it passed, however
    good later runs are. (Stopped runs leave ``running``, so their decision cannot change either.)
    :func:`stop_runs` is stateless: it judges every rung a running run has reached against all
    values recorded there.
"""

from __future__ import annotations

import bisect
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any, Literal

from sweepq.errors import ConfigError, Violation

__all__ = [
    "Asha",
    "Decision",
    "Hyperband",
    "HyperbandTracker",
    "Rule",
    "Stop",
    "StoppingRule",
    "clean_history",
    "decide",
    "evaluate",
    "stop_runs",
    "thresholds",
]

RuleType = Literal["hyperband", "asha"]
Goal = Literal["minimize", "maximize"]

_MIN_ITER_BANDS = 100  # W&B generates this many bands from min_iter
_BAND_CAP = 2**62  # no history is this long; stops int() of an overflowing float


@dataclass(frozen=True)
class Stop:
    """One run to stop, with the comparison that condemned it, for logs and the status table."""

    name: str
    reason: str


@dataclass(frozen=True)
class Rule:
    """An early_terminate section reduced to what the decision needs.

    Built from a dict or from config.EarlyTerminate (duck typed), so this module does not
    depend on config.py. ``bands`` are the hyperband bands or the ASHA rungs, ascending.
    """

    type: RuleType
    bands: tuple[int, ...]
    eta: float = 3.0
    strict: bool = True

    @property
    def rungs(self) -> tuple[int, ...]:
        """ASHA's name for the bands."""
        return self.bands

    @classmethod
    def from_config(cls, early_terminate: Any) -> Rule:
        """Validate and fill defaults like W&B's schema (eta=3, strict=true); raise ConfigError.

        Accepts a Rule (returned as is), a mapping as written in the sweep config, or any
        object with ``type``, ``min_iter``, ``max_iter``, ``s``, ``eta``, ``strict`` attributes.
        """
        if isinstance(early_terminate, Rule):
            return early_terminate
        get = _getter(early_terminate)
        rtype = get("type")
        eta = 3.0 if get("eta") is None else get("eta")
        strict = True if get("strict") is None else get("strict")
        min_iter, max_iter, s = get("min_iter"), get("max_iter"), get("s")
        violations = _validate(rtype, eta, strict, min_iter, max_iter, s)
        if violations:
            raise ConfigError(violations)
        if rtype == "hyperband":
            if max_iter is not None and s is not None:
                bands = _bands_from_max_iter(max_iter, int(s), eta)
            else:  # W&B raises KeyError for max_iter + min_iter without s; min_iter is meant
                bands = _bands_from_min_iter(min_iter, eta)
        elif min_iter is not None:
            bands = tuple(b for b in _bands_from_min_iter(min_iter, eta) if max_iter is None or b < max_iter)
        else:
            bands = _bands_from_max_iter(max_iter, int(s), eta)
        if not bands:
            raise ConfigError(
                [
                    Violation(
                        ("early_terminate",),
                        "gives no bands: try increasing s or max_iter, decreasing eta, or lowering min_iter",
                    )
                ]
            )
        return cls(type=rtype, bands=bands, eta=float(eta), strict=bool(strict))

    def build(self, goal: str) -> StoppingRule:
        """The incremental rule the pruner keeps: the one place that dispatches on the type."""
        return Hyperband(self, goal) if self.type == "hyperband" else Asha(self, goal)


@dataclass(frozen=True)
class Decision:
    """What one evaluation decided: runs to stop, and every run's rungs passed so far (ASHA)."""

    stops: tuple[Stop, ...]
    promoted: Mapping[str, int] = field(default_factory=dict)


def clean_history(values: Iterable[Any], *, goal: str = "minimize") -> list[float]:
    """Drop what W&B drops (non-numbers, bools, NaN, inf) and negate when maximizing.

    After this, smaller is better for every rule, as in W&B's engine.
    """
    out = [float(v) for v in values if _is_number(v)]
    return [-v for v in out] if goal == "maximize" else out


def thresholds(rule: Any, goal: str, histories: Mapping[str, Sequence[Any]]) -> tuple[float, ...]:
    """Hyperband threshold per band, in the metric's own units (±inf where no run reached it).

    Exposed for status displays; ``decide`` uses the same computation.
    """
    rule = Rule.from_config(rule)
    cleaned = [clean_history(h, goal=goal) for h in histories.values()]
    sign = -1.0 if goal == "maximize" else 1.0
    return tuple(sign * t for t in _hyperband_thresholds(rule, cleaned))


def evaluate(
    rule: Any,
    goal: str,
    histories: Mapping[str, Sequence[Any]],
    running: Set[str],
    *,
    promoted: Mapping[str, int] | None = None,
) -> Decision:
    """Apply the rule; ``histories`` hold raw logged values (cleaned here), every run in any state.

    ``promoted`` (ASHA only) maps a run to the number of rungs it has already passed; the
    returned Decision carries the updated map, to pass back next call. Hyperband is stateless
    and returns ``promoted`` unchanged. Stops come in the order of ``histories``.
    """
    rule = Rule.from_config(rule)
    goal = _check_goal(goal)
    items = [(name, clean_history(h, goal=goal), name in running) for name, h in histories.items()]
    if rule.type == "hyperband":
        return Decision(tuple(_hyperband(rule, goal, items)), dict(promoted or {}))
    stops, new_promoted = _asha(rule, goal, items, dict(promoted or {}))
    return Decision(tuple(stops), new_promoted)


def decide(
    rule: Any,
    goal: str,
    histories: Mapping[str, Sequence[Any]],
    running: Set[str],
    *,
    promoted: Mapping[str, int] | None = None,
) -> list[Stop]:
    """The stops of :func:`evaluate`, for callers that keep no ASHA state."""
    return list(evaluate(rule, goal, histories, running, promoted=promoted).stops)


def stop_runs(config: Mapping[str, Any], runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """W&B's ``hyperband_stop_runs`` over a plain sweep config dict: names of runs to stop.

    A run is ``{"name", "state", "history"}``; ``history`` lists the metric's logged values in
    order (W&B-style rows ``{metric_name: value, ...}`` are accepted too). Only
    ``state == "running"`` is judged. No ``early_terminate`` section: nothing to stop. ASHA is
    judged statelessly here (see the module docstring).
    """
    et = config.get("early_terminate")
    if not et:
        return []
    metric = config.get("metric")
    if not isinstance(metric, Mapping) or not isinstance(metric.get("name"), str):
        raise ConfigError([Violation(("metric",), "early_terminate needs metric.name")])
    rule = Rule.from_config(et)
    name, goal = metric["name"], _check_goal(metric.get("goal") or "minimize")
    items = [
        (
            str(run["name"]),
            clean_history(_metric_values(run.get("history") or [], name), goal=goal),
            run.get("state") == "running",
        )
        for run in runs
    ]
    if rule.type == "hyperband":
        stops = _hyperband(rule, goal, items)
    else:
        stops, _ = _asha(rule, goal, items, {})
    return [s.name for s in stops]


# -- private helpers ---------------------------------------------------------------------------


def _getter(source: Any) -> Any:
    if isinstance(source, Mapping):
        return source.get
    return lambda key: getattr(source, key, None)


def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_real(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    """W&B's is_number: a finite real scalar, not a bool (numpy scalars included)."""
    return _is_real(x) and math.isfinite(float(x))


def _validate(rtype: Any, eta: Any, strict: Any, min_iter: Any, max_iter: Any, s: Any) -> list[Violation]:
    """The checks of W&B's hyperband_stopping schema, which W&B's engine applies before deciding."""
    at = ("early_terminate",)
    out: list[Violation] = []
    if rtype not in ("hyperband", "asha"):
        out.append(Violation((*at, "type"), f"must be hyperband or asha, not {rtype!r}"))
    if not _is_real(eta) or not eta > 1 or not math.isfinite(eta):
        out.append(Violation((*at, "eta"), f"must be a number greater than 1, not {eta!r}"))
    if not isinstance(strict, bool):
        out.append(Violation((*at, "strict"), f"must be true or false, not {strict!r}"))
    if min_iter is not None and (not _is_int(min_iter) or min_iter < 1):
        out.append(Violation((*at, "min_iter"), f"must be an integer >= 1, not {min_iter!r}"))
    if max_iter is not None and not _is_int(max_iter):
        out.append(Violation((*at, "max_iter"), f"must be an integer, not {max_iter!r}"))
    if s is not None and (not _is_real(s) or not float(s).is_integer() or s < 0):
        out.append(Violation((*at, "s"), f"must be a whole number >= 0, not {s!r}"))
    if min_iter is None and (max_iter is None or s is None):
        out.append(Violation(at, "needs min_iter, or max_iter and s"))
    return out


def _check_goal(goal: str) -> Goal:
    if goal not in ("minimize", "maximize"):
        violation = Violation(("metric", "goal"), f"must be minimize or maximize, not {goal!r}")
        raise ConfigError([violation])
    return "maximize" if goal == "maximize" else "minimize"


def _bands_from_max_iter(max_iter: int, s: int, eta: float) -> tuple[int, ...]:
    """W&B: divide max_iter by eta s times, stopping below 1, truncating each band."""
    band: float = max_iter
    bands: list[int] = []
    for _ in range(s):
        band /= eta
        if band < 1:
            break
        bands.append(int(band))
    return tuple(sorted(set(bands)))


def _bands_from_min_iter(min_iter: int, eta: float) -> tuple[int, ...]:
    """W&B: int(min_iter * eta**k) for 100 values of k; bands no history can reach are left out."""
    band: float = min_iter
    bands: list[int] = []
    for _ in range(_MIN_ITER_BANDS):
        if band > _BAND_CAP:
            break
        bands.append(int(band))
        band *= eta
    return tuple(sorted(set(bands)))


def _metric_values(history: Iterable[Any], name: str) -> list[Any]:
    return [
        row[name] if isinstance(row, Mapping) else row for row in history if not isinstance(row, Mapping) or name in row
    ]


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _hyperband_thresholds(rule: Rule, histories: Sequence[Sequence[float]]) -> list[float]:
    """W&B's index: int(r * n) with r = 1.0 / eta (not n / eta: the float rounding differs)."""
    r = 1.0 / rule.eta
    out: list[float] = []
    for band in rule.bands:
        values = sorted(h[band - 1] for h in histories if len(h) >= band)
        out.append(values[int(r * len(values))] if values else math.inf)
    return out


def _hyperband(rule: Rule, goal: Goal, items: Sequence[tuple[str, list[float], bool]]) -> list[Stop]:
    limits = _hyperband_thresholds(rule, [h for _, h, _ in items])
    sign = -1.0 if goal == "maximize" else 1.0
    cmp = "<" if goal == "maximize" else ">"
    mode = "strict" if rule.strict else "not strict"
    stops: list[Stop] = []
    for name, h, is_running in items:
        if not is_running:
            continue
        reached = [(b, t) for b, t in zip(rule.bands, limits, strict=True) if b <= len(h)]
        if not reached:
            continue
        band, limit = reached[-1]
        value = h[band - 1] if rule.strict else min(h)
        if value > limit:  # ties survive
            reason = f"hyperband band {band}: {_fmt(sign * value)} {cmp} threshold {_fmt(sign * limit)} ({mode})"
            stops.append(Stop(name, reason))
    return stops


class StoppingRule(ABC):
    """An early-termination rule that keeps every run's history, in the shape of Optuna's
    pruners (a small interface a new rule implements) but incremental: the pruner tells it each
    history as it grows and asks which running runs to stop."""

    def __init__(self, rule: Any, goal: str) -> None:
        self.rule = Rule.from_config(rule)
        self.goal = _check_goal(goal)

    @abstractmethod
    def update(self, name: str, history: Sequence[Any]) -> None:
        """Set a run's whole history (raw values, cleaned here); a history that does not extend
        the previous one (a new attempt) replaces it."""

    @abstractmethod
    def forget(self, name: str) -> None:
        """Drop a run (and whatever was decided about it)."""

    @abstractmethod
    def decide(self, running: Iterable[str]) -> list[Stop]:
        """The running runs to stop now, with why."""


class Hyperband(StoppingRule):
    """W&B's hyperband decision kept up to date as histories grow: the same stops as
    :func:`evaluate`, but a call costs O(running runs), not O(all values of all runs).

    A history's value at band b, h[b-1], never changes once written, so each band keeps its
    values sorted (inserted once, when a history reaches b); the threshold is then one index into
    that list. Pure: the pruner feeds it histories and acts on the stops it returns.
    """

    def __init__(self, rule: Any, goal: str) -> None:
        super().__init__(rule, goal)
        if self.rule.type != "hyperband":
            raise ValueError("Hyperband serves hyperband only")
        self._bands: dict[int, list[float]] = {b: [] for b in self.rule.bands}
        self._hist: dict[str, list[float]] = {}
        self._best: dict[str, float] = {}

    def update(self, name: str, history: Sequence[Any]) -> None:
        """Set a run's whole history (raw values; cleaned here). A shorter or different history
        than before (a new attempt) replaces the old one's band values."""
        h = clean_history(history, goal=self.goal)
        old = self._hist.get(name, [])
        if h[: len(old)] != old:
            self.forget(name)
            old = []
        for band, values in self._bands.items():
            if len(old) < band <= len(h):
                bisect.insort(values, h[band - 1])
        self._hist[name] = h
        if h:
            self._best[name] = min(h)

    def forget(self, name: str) -> None:
        h = self._hist.pop(name, [])
        self._best.pop(name, None)
        for band, values in self._bands.items():
            if band <= len(h):
                del values[bisect.bisect_left(values, h[band - 1])]

    def thresholds(self) -> list[float]:
        r = 1.0 / self.rule.eta
        return [v[int(r * len(v))] if v else math.inf for v in self._bands.values()]

    def decide(self, running: Iterable[str]) -> list[Stop]:
        """Stops among `running`, judged exactly as W&B's rule over every history given."""
        limits = dict(zip(self.rule.bands, self.thresholds(), strict=True))
        sign = -1.0 if self.goal == "maximize" else 1.0
        cmp = "<" if self.goal == "maximize" else ">"
        mode = "strict" if self.rule.strict else "not strict"
        stops = []
        for name in running:
            h = self._hist.get(name, [])
            band = next((b for b in reversed(self.rule.bands) if b <= len(h)), None)
            if band is None:
                continue
            value = h[band - 1] if self.rule.strict else self._best[name]
            if value > limits[band]:  # ties survive
                stops.append(
                    Stop(
                        name,
                        f"hyperband band {band}: {_fmt(sign * value)} {cmp} "
                        f"threshold {_fmt(sign * limits[band])} ({mode})",
                    )
                )
        return stops


HyperbandTracker = Hyperband  # the name the first version used


class Asha(StoppingRule):
    """ASHA as the pruner keeps it: histories and the rungs each run has passed, so a decision
    is never revisited (see the module docstring). A decision costs O(all values)."""

    def __init__(self, rule: Any, goal: str) -> None:
        super().__init__(rule, goal)
        self._hist: dict[str, list[float]] = {}
        self._promoted: dict[str, int] = {}

    def update(self, name: str, history: Sequence[Any]) -> None:
        h = clean_history(history, goal=self.goal)
        old = self._hist.get(name, [])
        if h[: len(old)] != old:
            self._promoted.pop(name, None)
        self._hist[name] = h

    def forget(self, name: str) -> None:
        self._hist.pop(name, None)
        self._promoted.pop(name, None)

    def decide(self, running: Iterable[str]) -> list[Stop]:
        wanted = set(running)
        items = [(name, h, name in wanted) for name, h in self._hist.items()]
        stops, self._promoted = _asha(self.rule, self.goal, items, self._promoted)
        return stops


def _rung_value(rule: Rule, h: Sequence[float], rung: int) -> float:
    return h[rung - 1] if rule.strict else min(h[:rung])


def _asha(
    rule: Rule,
    goal: Goal,
    items: Sequence[tuple[str, list[float], bool]],
    promoted: dict[str, int],
) -> tuple[list[Stop], dict[str, int]]:
    """Judge each running run at every rung it reached and has not yet passed, lowest first."""
    at_rung = {rung: sorted(_rung_value(rule, h, rung) for _, h, _ in items if len(h) >= rung) for rung in rule.bands}
    sign = -1.0 if goal == "maximize" else 1.0
    cmp = "<" if goal == "maximize" else ">"
    stops: list[Stop] = []
    for name, h, is_running in items:
        if not is_running:
            continue
        for k in range(promoted.get(name, 0), len(rule.bands)):
            rung = rule.bands[k]
            if len(h) < rung:
                break
            values = at_rung[rung]
            keep = max(1, int(len(values) / rule.eta))
            cutoff = values[keep - 1]
            value = _rung_value(rule, h, rung)
            if value > cutoff:  # ties survive
                stops.append(
                    Stop(
                        name,
                        (
                            f"asha rung {rung}: {_fmt(sign * value)} {cmp} {_fmt(sign * cutoff)}, "
                            f"not in the best {keep} of {len(values)}"
                        ),
                    )
                )
                break
            promoted[name] = k + 1
    return stops, promoted
