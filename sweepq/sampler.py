"""The Optuna adapter: suggestions in W&B's u-space, results told back, rebuilt from records.

The planner keeps one :class:`Sampler` per sweep in memory. Redis holds every trial's ``encoded``
coordinates, state, value and intermediate values, so a restarted planner calls
:meth:`Sampler.rebuild` and continues exactly where the old one stopped: the next suggestion
depends only on the seed and the trials told so far (each ask reseeds from ``(seed, number of
trials)``), never on the process's history.

Coordinates follow ``Distribution.encoding``: ``index`` is the index into ``values``, ``int`` an
integer range, ``u`` a float in [0, 1] mapped through the distribution's inverse CDF (so every
W&B law is exact, weighted categoricals included), and ``const`` is no coordinate. Optuna sees an
``index`` over all-numeric values (``[16, 32, 64]``, ``[1e-3, 3e-3, 1e-2]``) as an integer range
over the values' sorted positions, so models know 32 lies between 16 and 64 (W&B's engine does
the same; worth one to two orders of magnitude on such spaces), and any other ``index`` as an
Optuna categorical. The store keeps indices either way.

Optuna is imported here and only here; ``import sweepq`` does not import this module.
"""

from __future__ import annotations

import importlib.util
import math
import numbers
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import Trial, TrialState

from sweepq.space import Distribution, IntUniform, Path, dotted

if TYPE_CHECKING:
    from sweepq.gp import PendingStrategy, Startup

__all__ = ["Algorithm", "Encoded", "Sampler", "Suggestion", "TrialRecord", "TERMINAL_STATES"]

Algorithm = Literal["tpe", "gp", "auto"]
Encoded = dict[str, float | int]
TrialRecord = Mapping[str, Any]

# The store's ended states; every other state is a trial still pending (queued, running...).
# Crashed, killed (stopped by a person) and cancelled trials gave no result to learn from: FAIL,
# which TPE and GP ignore.
TERMINAL_STATES: Mapping[str, TrialState] = {
    "finished": TrialState.COMPLETE,
    "failed": TrialState.FAIL,
    "pruned": TrialState.PRUNED,
    "crashed": TrialState.FAIL,
    "killed": TrialState.FAIL,
    "cancelled": TrialState.FAIL,
}

optuna.logging.set_verbosity(optuna.logging.WARNING)

# "auto" hands a sweep to TPE from this many trials on (the GP's fit is cubic in them: ask cost
# in benchmarks/README.md) and for spaces wider than this many model columns (one-hot counted).
_GP_MAX_TRIALS = 300
_GP_MAX_WIDTH = 32
_GP_PENDING: PendingStrategy = "believer"  # scikit-learn GP's running-trial rule (benchmarks/search_quality.py)
_GP_STARTUP: Startup = "random"  # scikit-learn GP's start-up design
_GP_RESTARTS = 1  # extra restarts of the GP's marginal-likelihood fit
_GP_UCB_BETA: float | None = 2.0  # beta of the "bucb" rules (None: the 0.2 d log 2t schedule)


def _gp_startup(dims: int) -> int:
    """Random trials before the scikit-learn GP models: one more than the parameters, at least
    2 (W&B's engine models from its second finished run), at most 10 (the old fixed count)."""
    return max(2, min(10, dims + 1))


@dataclass(frozen=True)
class Suggestion:
    """A trial to run: ``params`` as the program sees them, ``encoded`` as stored for rebuild."""

    params: dict[str, Any]
    encoded: Encoded


class Sampler:
    """Ask/tell over one sweep's space; ``method`` random or bayes (grid is the planner's job).

    ``algorithm`` picks bayes's model: ``"tpe"`` (Optuna's multivariate TPE with a constant
    liar), ``"gp"`` (a GP with expected improvement: Optuna's GPSampler, which handles running
    trials with a batch acquisition, when torch is installed; else scikit-learn's GP through
    :class:`sweepq.gp.SklearnGPSampler`, with the kriging believer for running trials), or
    ``"auto"`` (the default: the GP until the sweep has 300 trials or when the space has more
    than 32 model columns, TPE from there; measured in benchmarks/search_quality.py).
    ``n_startup_trials`` (random trials before a model): None is 10 for TPE and Optuna's GP and
    one more than the parameters (2..10) finished trials for the scikit-learn GP.
    Random search draws u ~ U[0, 1) per coordinate from
    ``numpy.random.default_rng([seed, trial number])``: W&B's law, and the same draw as
    ``Space.sample`` with that generator.
    """

    def __init__(
        self,
        config: Any,
        *,
        seed: int,
        algorithm: Algorithm | str = "tpe",
        n_startup_trials: int | None = None,
    ) -> None:
        if algorithm not in ("tpe", "gp", "auto"):
            raise ValueError(f"algorithm must be tpe, gp or auto, not {algorithm!r}")
        self._method: str = config.method
        self._space = config.space
        metric = getattr(config, "metric", None)
        self._goal: str = getattr(metric, "goal", None) or "minimize"
        self._seed = int(seed)
        self._n_startup_given = n_startup_trials
        self._algorithm = _resolve_algorithm(algorithm) if self._method == "bayes" else "random"
        self._auto = algorithm == "auto"
        self._leaves: tuple[tuple[Path, Distribution], ...] = tuple(
            (p, d) for p, d in self._space.leaves if d.encoding != "const"
        )
        self._distributions = {dotted(p): _optuna_distribution(d) for p, d in self._leaves}
        # index -> sorted position (and back) for numeric values lists, which Optuna sees ordered
        self._rank: dict[str, tuple[int, ...]] = {}
        self._unrank: dict[str, tuple[int, ...]] = {}
        for p, d in self._leaves:
            order = _numeric_order(d)
            if order is not None:
                self._unrank[dotted(p)] = order
                self._rank[dotted(p)] = tuple(int(i) for i in np.argsort(order))
        self._width = sum(
            d.n_choices if dotted(p) not in self._rank and d.encoding == "index" else 1 for p, d in self._leaves
        )
        self._study = self._new_study()
        self._pending: list[_Pending] = []  # oldest first

    @property
    def algorithm(self) -> str:
        """The model bayes starts with: "tpe", "gp" (Optuna's, torch), "sklearn-gp", or "random"."""
        return self._algorithm

    @property
    def study(self) -> optuna.Study:
        """The in-memory Optuna study, for inspection (trial history, best value)."""
        return self._study

    def ask(self, number: int | None = None) -> Suggestion:
        """A new trial, pending until told; its coordinates go into ``encoded``.

        ``number`` is the sweep's trial number: it seeds the draw (so a rebuilt sampler asked
        for the same number suggests the same point) and names the trial for
        :meth:`tell_record` and :meth:`forget`. Without it, the study's trial count is used.
        """
        if self._method not in ("random", "bayes"):
            raise ValueError(f"the sampler serves random and bayes, not {self._method!r}")
        n = len(self._study.trials) if number is None else int(number)
        if self._method == "random":
            encoded = self._draw(np.random.default_rng([self._seed, n]))
            self.add_pending(encoded, number=number)
            return Suggestion(self._decode(encoded), encoded)
        self._study.sampler = self._optuna_sampler(n)
        with _quiet():
            trial = self._study.ask(self._distributions)
        encoded = self._normalize(self._from_optuna(trial.params))
        self._add(trial, encoded, number)
        return Suggestion(self._decode(encoded), encoded)

    def add_pending(self, encoded: Mapping[str, Any], *, number: int | None = None) -> None:
        """Register a trial running with these coordinates that this sampler did not ask for."""
        encoded = self._normalize(encoded)
        with _quiet():
            self._study.enqueue_trial(self._to_optuna(encoded), skip_if_exists=False)
            trial = self._study.ask(self._distributions)
        self._add(trial, encoded, number)

    def forget(self, number: int) -> None:
        """The trial asked as ``number`` was never created: it stops counting as pending.

        Optuna cannot delete a trial, so it is told FAIL, which TPE and GP ignore.
        """
        entry = self._take(number=number)
        if entry is not None:
            with _quiet():
                self._study.tell(entry.trial, state=TrialState.FAIL)

    def tell_record(self, record: TrialRecord) -> None:
        """:meth:`tell` from a stored trial record (``number``, ``encoded``, ``state``...)."""
        self.tell(
            record["encoded"],
            record["state"],
            record.get("value"),
            record.get("intermediate") or (),
            number=record.get("number"),
        )

    def tell(
        self,
        encoded: Mapping[str, Any],
        state: str,
        value: float | None = None,
        intermediate: Sequence[Any] = (),
        *,
        number: int | None = None,
    ) -> None:
        """Report a trial's outcome; the oldest pending trial with these coordinates takes it.

        ``value`` is the trial's best logged value of the metric (W&B's rule; the caller picks
        it). A finished trial without a finite value counts as failed; a failed trial counts as
        the worst value told so far (W&B's impute rule), or as Optuna's FAIL before any. ``intermediate`` are the
        logged values in order (non-finite ones dropped, position = step); a pruned trial's value
        is its last intermediate value, as Optuna does. The pending trial is found by ``number``
        when given, else the oldest with these coordinates; an unknown trial is added first.
        """
        if state not in TERMINAL_STATES:
            raise ValueError(f"state must be one of {sorted(TERMINAL_STATES)}, not {state!r}")
        encoded = self._normalize(encoded)
        entry = self._take(number=number, encoded=encoded)
        if entry is None:
            self.add_pending(encoded, number=number)
            entry = self._take(number=number, encoded=encoded)
            assert entry is not None
        trial = entry.trial
        steps = [float(v) for v in intermediate if _is_finite(v)]
        optuna_state = TERMINAL_STATES[state]
        if optuna_state == TrialState.COMPLETE and not _is_finite(value):
            optuna_state = TrialState.FAIL
        if state == "failed" and (worst := self._worst()) is not None:
            # W&B's rule (metric.impute: worst): a failed run counts as the worst value seen, so
            # the model steers away from points that crash (OOM at a large batch size, say).
            optuna_state, value = TrialState.COMPLETE, worst
        if optuna_state == TrialState.PRUNED and not steps and _is_finite(value):
            steps = [float(value)]  # type: ignore[arg-type]
        with _quiet():
            for step, v in enumerate(steps):
                trial.report(v, step)
            if optuna_state == TrialState.COMPLETE:
                self._study.tell(trial, float(value))  # type: ignore[arg-type]
            else:
                self._study.tell(trial, state=optuna_state)

    def _worst(self) -> float | None:
        values = [t.value for t in self._study.trials if t.state == TrialState.COMPLETE and t.value is not None]
        if not values:
            return None
        return min(values) if self._goal == "maximize" else max(values)

    def rebuild(self, records: Iterable[TrialRecord]) -> None:
        """Start over from stored trials, in trial order: pending ones stay pending.

        Each record has ``encoded`` (records without it, like grid points, are skipped),
        ``state``, ``value`` and ``intermediate``. Replaying them gives the study the trials,
        states and values an uninterrupted sampler has, so the next ask is the same.
        """
        self._study = self._new_study()
        self._pending = []
        for record in records:
            if not record.get("encoded"):
                continue
            if record.get("state") in TERMINAL_STATES:
                self.tell_record(record)
            else:
                self.add_pending(record["encoded"], number=record.get("number"))

    def pending(self) -> list[Encoded]:
        """Coordinates of every trial asked or added and not yet told, oldest first."""
        return [dict(entry.encoded) for entry in self._pending]

    # -- private ----------------------------------------------------------------------------

    def _to_optuna(self, encoded: Encoded) -> dict[str, Any]:
        """Stored indices to Optuna's coordinates (sorted positions for numeric values)."""
        return {k: self._rank[k][int(v)] if k in self._rank else v for k, v in encoded.items()}

    def _from_optuna(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {k: self._unrank[k][int(v)] if k in self._unrank else v for k, v in params.items()}

    def _add(self, trial: Trial, encoded: Encoded, number: int | None) -> None:
        if number is not None:
            self.forget(number)  # asked again under the same number: the old one is moot
        self._pending.append(_Pending(trial, encoded, number))

    def _take(self, *, number: int | None = None, encoded: Encoded | None = None) -> _Pending | None:
        """Remove and return the pending trial named ``number``, else the oldest at ``encoded``."""
        if number is not None:
            for i, entry in enumerate(self._pending):
                if entry.number == number:
                    return self._pending.pop(i)
        if encoded is not None:
            for i, entry in enumerate(self._pending):
                if entry.encoded == encoded and (number is None or entry.number is None):
                    return self._pending.pop(i)
        return None

    def _new_study(self) -> optuna.Study:
        direction = (
            optuna.study.StudyDirection.MAXIMIZE if self._goal == "maximize" else optuna.study.StudyDirection.MINIMIZE
        )
        with _quiet():
            return optuna.create_study(
                storage=optuna.storages.InMemoryStorage(),
                sampler=optuna.samplers.RandomSampler(seed=self._seed),
                direction=direction,
            )

    def _startup(self, default: int) -> int:
        """The random start-up the caller asked for (0 included), else the model's default."""
        return default if self._n_startup_given is None else self._n_startup_given

    def _optuna_sampler(self, n: int) -> optuna.samplers.BaseSampler:
        """A fresh sampler seeded by (seed, n): suggestions depend on history, not RNG state."""
        seed = int(np.random.SeedSequence([self._seed, n]).generate_state(1)[0])
        # A GP's ask grows cubically with history, and its model gets thin in wide spaces: "auto"
        # hands long sweeps and wide spaces to TPE (ask cost: benchmarks/search_quality.py
        # --ask-cost). Running trials no longer matter here: both GPs account for them.
        tpe = self._algorithm == "tpe" or (self._auto and (n >= _GP_MAX_TRIALS or self._width > _GP_MAX_WIDTH))
        with _quiet():
            if tpe:
                return optuna.samplers.TPESampler(
                    seed=seed, n_startup_trials=self._startup(10), multivariate=True, constant_liar=True
                )
            if self._algorithm == "gp":
                return optuna.samplers.GPSampler(seed=seed, n_startup_trials=self._startup(10))
            from sweepq.gp import SklearnGPSampler

            return SklearnGPSampler(
                self._distributions,
                seed=seed,
                n_startup_trials=self._startup(_gp_startup(len(self._distributions))),
                pending=_GP_PENDING,
                startup=_GP_STARTUP,
                n_restarts=_GP_RESTARTS,
                ucb_beta=_GP_UCB_BETA,
                design_seed=self._seed,
                design_index=n,
            )

    def _draw(self, rng: np.random.Generator) -> Encoded:
        """W&B's random search: u per coordinate in leaf order, through each law's ppf."""
        out: Encoded = {}
        for path, dist in self._leaves:
            u = float(rng.random())
            if dist.encoding == "u":
                out[dotted(path)] = u
            elif dist.encoding == "int":
                out[dotted(path)] = int(dist.ppf(u))
            else:  # Categorical.ppf indexes by randint's law: the same index, kept
                out[dotted(path)] = int(IntUniform(min=0, max=dist.n_choices - 1).ppf(u))
        return out

    def _normalize(self, encoded: Mapping[str, Any]) -> Encoded:
        """Check coordinates against the space (a stale or foreign record fails loudly)."""
        names = set(self._distributions)
        if set(encoded) != names:
            raise ValueError(f"encoded keys {sorted(encoded)} are not the space's {sorted(names)}")
        out: Encoded = {}
        for path, dist in self._leaves:
            name = dotted(path)
            x = encoded[name]
            ok = isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)
            if ok and dist.encoding == "u":
                out[name] = float(x)
                ok = 0.0 <= x <= 1.0
            elif ok:
                out[name] = int(x)
                low, high = _int_range(dist)
                ok = x == int(x) and low <= x <= high
            if not ok:
                raise ValueError(f"encoded {name}={x!r} is outside {dist.name}'s coordinates")
        return out

    def _decode(self, encoded: Mapping[str, float | int]) -> dict[str, Any]:
        flat: dict[Path, Any] = {
            p: d.decode(None if d.encoding == "const" else encoded[dotted(p)]) for p, d in self._space.leaves
        }
        nested: dict[str, Any] = self._space.nest(flat)
        return nested


@dataclass
class _Pending:
    trial: Trial
    encoded: Encoded
    number: int | None


def _numeric_order(dist: Distribution) -> tuple[int, ...] | None:
    """Indices of a categorical's values in ascending order, when every value is a real number."""
    if dist.encoding != "index":
        return None
    values = getattr(dist, "values", ())
    if len(values) < 2 or not all(_is_finite(v) for v in values):
        return None
    return tuple(int(i) for i in np.argsort([float(v) for v in values], kind="stable"))


def _optuna_distribution(dist: Distribution) -> BaseDistribution:
    if dist.encoding == "index" and _numeric_order(dist) is not None:
        return IntDistribution(0, dist.n_choices - 1)
    if dist.encoding == "index":
        return CategoricalDistribution(list(range(dist.n_choices)))
    if dist.encoding == "int":
        return IntDistribution(*_int_range(dist))
    if dist.encoding == "u":
        return FloatDistribution(0.0, 1.0)
    raise ValueError(f"{dist.name}: unknown encoding {dist.encoding!r}")


def _int_range(dist: Distribution) -> tuple[int, int]:
    """Inclusive bounds of an index or int coordinate."""
    if dist.encoding == "index":
        return 0, dist.n_choices - 1
    return int(dist.min), int(dist.max)  # type: ignore[attr-defined]


def _resolve_algorithm(algorithm: Algorithm) -> str:
    """tpe stays tpe; gp and auto take Optuna's GP with torch, scikit-learn's without."""
    if algorithm == "tpe":
        return "tpe"
    return "gp" if _torch_available() else "sklearn-gp"


def _torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def _is_finite(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


@contextmanager
def _quiet() -> Iterator[None]:
    """Optuna's experimental-feature warnings are about its API, not the user's sweep."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield
