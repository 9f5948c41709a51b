"""Search spaces in the W&B Sweeps language: one frozen class per distribution, and the grid.

Each distribution maps u in [0, 1) to a value with the law of W&B's open-source `sweeps` engine
(`params.py`, `grid_search.py`), so a sweep moved from W&B samples the same values. The sampler
works in that u-space (or on indices and ints, see `encoding`), so every form maps exactly.
scipy is imported inside the few functions that need it: importing this module stays cheap.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import itertools
import math
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from sweepq.errors import ConfigError, PathPart, Violation

if TYPE_CHECKING:
    import numpy as np

# numpy is imported where values are drawn, not here: `sweepq validate` (an editor's hook on
# every save) checks a config without it (~100 ms of imports).

__all__ = [
    "REGISTRY",
    "Beta",
    "Categorical",
    "Constant",
    "Distribution",
    "IntUniform",
    "InvLogUniform",
    "InvLogUniformValues",
    "LogNormal",
    "LogUniform",
    "LogUniformValues",
    "Normal",
    "Path",
    "QBeta",
    "QLogNormal",
    "QLogUniform",
    "QLogUniformValues",
    "QNormal",
    "QUniform",
    "Space",
    "Uniform",
    "WeightedCategorical",
    "build",
    "dotted",
    "grid_key",
    "infer",
]

Path = tuple[str, ...]

_NUMBER = {"kind": "number"}
_INT = {"kind": "int"}
_LIST = {"kind": "list"}
_PROBS = {"kind": "probs"}
_ANY = {"kind": "any"}
# Optuna may hand back u = 0.0 or 1.0 exactly; there the normal laws are infinite.
_U_EPS = 1e-12
# exp() of anything larger overflows a float.
_MAX_EXPONENT = 709.0
# The largest finite float: values are clamped to it, so a draw is never inf (not JSON).
_MAX_FLOAT = sys.float_info.max


def dotted(path: Path) -> str:
    """The name a person reads: ("optimizer", "lr") -> "optimizer.lr"."""
    return ".".join(path)


def grid_key(value: Any) -> str:
    """W&B's identity for grid values: YAML text, integral floats as ints (3e6 == 3000000)."""
    import yaml  # type: ignore[import-untyped,unused-ignore]

    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(yaml.dump(value, default_flow_style=True, sort_keys=True))


def _fresh(value: Any) -> Any:
    """A copy of a container value, so one trial mutating its config cannot touch the next."""
    return copy.deepcopy(value) if isinstance(value, (list, dict)) else value


def _finite(x: float) -> float:
    """x clamped to the finite floats: huge (but valid) parameters must not draw inf."""
    if math.isnan(x):
        return 0.0
    return min(max(float(x), -_MAX_FLOAT), _MAX_FLOAT)


def _lerp(u: float, lo: float, hi: float) -> float:
    """u * (hi - lo) + lo, in [lo, hi] without overflow when hi - lo exceeds the floats."""
    lo, hi = float(lo), float(hi)
    span = hi - lo
    x = u * span + lo if math.isfinite(span) else (1.0 - u) * lo + u * hi
    return min(max(x, lo), hi)


def _exp(x: float) -> float:
    """np.exp(x) clamped to the finite floats, without numpy's overflow warning."""
    import numpy as np

    with np.errstate(over="ignore"):
        return _finite(float(np.exp(x)))


def _quantize(x: float, q: float) -> int | float:
    """round(x / q) * q, half to even (numpy); an int only when q was written as an int.

    When x / q or the product overflows (q tiny next to x, or a huge x), x is already as
    close to a multiple of q as a float can say, and x itself is the answer.
    """
    import numpy as np

    x = _finite(x)
    with np.errstate(over="ignore", invalid="ignore"):
        r = float(np.round(x / q) * q)
    if not math.isfinite(r):
        r = x
    return int(r) if isinstance(q, int) else r


def _randint_ppf(u: float, low: int, high: int) -> int:
    """scipy.stats.randint.ppf(u, low, high) (W&B's law), but u = 0 gives low, not low - 1."""
    if u <= 0.0:
        return low
    if u >= 1.0:
        return high - 1
    vals = math.ceil(u * (high - low) + low) - 1
    vals1 = min(max(vals - 1, low), high)
    out = vals1 if (vals1 - low + 1.0) / (high - low) >= u else vals
    # Floats carry 53 bits: with 64-bit bounds the arithmetic can step past either end.
    return min(max(out, low), high - 1)


def _clip_u(u: float) -> float:
    return min(max(u, _U_EPS), 1.0 - _U_EPS)


def _ndtri(u: float) -> float:
    from scipy.special import ndtri  # type: ignore[import-untyped,unused-ignore]

    return float(ndtri(_clip_u(u)))


@dataclass(frozen=True)
class Distribution:
    """Base of every form: `ppf` maps u in [0, 1) to a value; fields are the W&B keys."""

    name: ClassVar[str] = ""
    encoding: ClassVar[str] = "u"
    deprecated_by: ClassVar[str | None] = None
    grid_ok: ClassVar[bool] = False

    def ppf(self, u: float) -> Any:
        raise NotImplementedError

    def decode(self, x: Any) -> Any:
        """The value for a sampler coordinate: u for "u" encoding (the default)."""
        return self.ppf(float(x))

    @property
    def n_choices(self) -> int:
        """How many indices an "index" encoding has (0 for other encodings)."""
        return 0

    def grid_values(self) -> list[Any]:
        raise ValueError(f"{self.name} has no grid: grid needs categorical, constant, int_uniform or q_uniform")

    def grid_count(self) -> int:
        return len(self.grid_values())

    def to_dict(self) -> dict[str, Any]:
        """Normalized W&B form: explicit distribution, defaults filled in."""
        out: dict[str, Any] = {"distribution": self.name}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = [_fresh(v) for v in value] if isinstance(value, tuple) else _fresh(value)
        return out

    def _check(self) -> Iterator[tuple[str, str]]:
        """Relations between fields, as (key, message); types are already right here."""
        return iter(())


def _min_max(d: Any) -> Iterator[tuple[str, str]]:
    if not d.min < d.max:
        yield "max", f"must be greater than min ({d.max} <= {d.min})"


def _positive(d: Any, key: str, what: str = "") -> Iterator[tuple[str, str]]:
    value = getattr(d, key)
    if not value > 0:
        yield key, f"must be greater than 0{what} (got {value})"


@dataclass(frozen=True)
class Constant(Distribution):
    name: ClassVar[str] = "constant"
    encoding: ClassVar[str] = "const"
    grid_ok: ClassVar[bool] = True
    value: Any = field(metadata=_ANY)

    def ppf(self, u: float) -> Any:
        return _fresh(self.value)

    def decode(self, x: Any) -> Any:
        return _fresh(self.value)

    def grid_values(self) -> list[Any]:
        return [_fresh(self.value)]


def _dedup(values: Any) -> list[Any]:
    """Equal values (by W&B's YAML identity) are one grid value, placed where the first one is
    written; W&B keeps the last one's value ([1, 1.0] gives 1.0), and so do we."""
    merged: dict[str, Any] = {}
    for v in values:
        merged[grid_key(v)] = v
    return [_fresh(v) for v in merged.values()]


@dataclass(frozen=True)
class Categorical(Distribution):
    name: ClassVar[str] = "categorical"
    encoding: ClassVar[str] = "index"
    grid_ok: ClassVar[bool] = True
    values: tuple[Any, ...] = field(metadata=_LIST)

    def ppf(self, u: float) -> Any:
        return _fresh(self.values[_randint_ppf(u, 0, len(self.values))])

    def decode(self, x: Any) -> Any:
        return _fresh(self.values[int(x)])

    @property
    def n_choices(self) -> int:
        return len(self.values)

    def grid_values(self) -> list[Any]:
        return _dedup(self.values)


@dataclass(frozen=True)
class WeightedCategorical(Distribution):
    """Encoded as u, so a sampler's uniform prior over u keeps the written probabilities."""

    name: ClassVar[str] = "categorical_w_probabilities"
    values: tuple[Any, ...] = field(metadata=_LIST)
    probabilities: tuple[float, ...] = field(metadata=_PROBS)

    def ppf(self, u: float) -> Any:
        # W&B takes argmin(u >= cdf): the first value whose cumulative weight exceeds u. When
        # rounding leaves cdf[-1] a hair under 1 and u lands above it, W&B wraps to index 0;
        # we take the last value instead.
        import numpy as np

        cdf = np.cumsum(self.probabilities)
        i = int(np.searchsorted(cdf, u, side="right"))
        return _fresh(self.values[min(i, len(self.values) - 1)])

    def _check(self) -> Iterator[tuple[str, str]]:
        if len(self.probabilities) != len(self.values):
            yield (
                "probabilities",
                f"must have one entry per value ({len(self.probabilities)} != {len(self.values)})",
            )
        total = float(sum(self.probabilities))
        if not abs(total - 1.0) <= 1e-8 + 1e-5:  # np.isclose(total, 1.0), without numpy
            yield "probabilities", f"must sum to 1 (sum is {total:g})"


@dataclass(frozen=True)
class IntUniform(Distribution):
    name: ClassVar[str] = "int_uniform"
    encoding: ClassVar[str] = "int"
    grid_ok: ClassVar[bool] = True
    min: int = field(metadata=_INT)
    max: int = field(metadata=_INT)

    def ppf(self, u: float) -> int:
        return _randint_ppf(u, self.min, self.max + 1)

    def decode(self, x: Any) -> int:
        return int(x)

    def grid_values(self) -> list[Any]:
        return list(range(self.min, self.max + 1))

    def grid_count(self) -> int:
        return self.max - self.min + 1

    def _check(self) -> Iterator[tuple[str, str]]:
        yield from _min_max(self)


@dataclass(frozen=True)
class _Bounded(Distribution):
    """min < max: the uniform and log-uniform families."""

    min: float = field(metadata=_NUMBER)
    max: float = field(metadata=_NUMBER)

    def _check(self) -> Iterator[tuple[str, str]]:
        yield from _min_max(self)


@dataclass(frozen=True)
class _QBounded(_Bounded):
    q: float = field(default=1.0, metadata=_NUMBER)

    def _check(self) -> Iterator[tuple[str, str]]:
        yield from super()._check()
        yield from _positive(self, "q")


class _Exponents:
    """Deprecated forms whose min/max are natural-log exponents."""

    def _check(self) -> Iterator[tuple[str, str]]:
        yield from super()._check()  # type: ignore[misc]
        for key in ("min", "max"):
            if abs(getattr(self, key)) > _MAX_EXPONENT:
                yield key, f"is a natural-log exponent; exp({getattr(self, key)}) overflows"


class _PositiveMin:
    """The *_values log forms: a log needs min > 0."""

    name: ClassVar[str]

    def _check(self) -> Iterator[tuple[str, str]]:
        yield from _positive(self, "min", f" for {self.name}")
        yield from super()._check()  # type: ignore[misc]


@dataclass(frozen=True)
class Uniform(_Bounded):
    name: ClassVar[str] = "uniform"

    def ppf(self, u: float) -> float:
        return _lerp(u, self.min, self.max)


@dataclass(frozen=True)
class QUniform(_QBounded):
    name: ClassVar[str] = "q_uniform"
    grid_ok: ClassVar[bool] = True

    def ppf(self, u: float) -> int | float:
        return _quantize(_lerp(u, self.min, self.max), self.q)

    def grid_values(self) -> list[Any]:
        """np.arange(min, max, q): W&B leaves max out of the grid."""
        import numpy as np

        return _dedup(np.arange(self.min, self.max, self.q).tolist())

    def grid_count(self) -> int:
        """len(np.arange(min, max, q)) without building it (a tiny q makes it huge)."""
        steps = (float(self.max) - float(self.min)) / self.q
        return max(math.ceil(steps), 0) if math.isfinite(steps) else sys.maxsize


def _log_uniform(u: float, lo: float, hi: float) -> float:
    """exp(uniform(lo, hi)) with lo, hi natural-log exponents."""
    return _exp(u * (hi - lo) + lo)


def _inv_log_uniform(u: float, lo: float, hi: float) -> float:
    """W&B's inv_log_uniform_v1_ppf: exp(-uniform.ppf(1 - u, lo, hi - lo))."""
    return _exp(-((1.0 - u) * (hi - lo) + lo))


@dataclass(frozen=True)
class LogUniform(_Exponents, _Bounded):
    """min and max are natural-log exponents: values lie in [e^min, e^max]."""

    name: ClassVar[str] = "log_uniform"
    deprecated_by: ClassVar[str | None] = "log_uniform_values"

    def ppf(self, u: float) -> float:
        return _log_uniform(u, self.min, self.max)


@dataclass(frozen=True)
class LogUniformValues(_PositiveMin, _Bounded):
    name: ClassVar[str] = "log_uniform_values"

    def ppf(self, u: float) -> float:
        return _log_uniform(u, math.log(self.min), math.log(self.max))


@dataclass(frozen=True)
class QLogUniform(_Exponents, _QBounded):
    name: ClassVar[str] = "q_log_uniform"
    deprecated_by: ClassVar[str | None] = "q_log_uniform_values"

    def ppf(self, u: float) -> int | float:
        return _quantize(_log_uniform(u, self.min, self.max), self.q)


@dataclass(frozen=True)
class QLogUniformValues(_PositiveMin, _QBounded):
    name: ClassVar[str] = "q_log_uniform_values"

    def ppf(self, u: float) -> int | float:
        return _quantize(_log_uniform(u, math.log(self.min), math.log(self.max)), self.q)


@dataclass(frozen=True)
class InvLogUniform(_Exponents, _Bounded):
    """W&B's law: 1/X with X log-uniform on [e^min, e^max], so values lie in [e^-max, e^-min]."""

    name: ClassVar[str] = "inv_log_uniform"
    deprecated_by: ClassVar[str | None] = "inv_log_uniform_values"

    def ppf(self, u: float) -> float:
        return _inv_log_uniform(u, self.min, self.max)


@dataclass(frozen=True)
class InvLogUniformValues(_PositiveMin, _Bounded):
    """Values in [min, max], log-uniform: the same law as log_uniform_values."""

    name: ClassVar[str] = "inv_log_uniform_values"

    def ppf(self, u: float) -> float:
        return _inv_log_uniform(u, -math.log(self.max), -math.log(self.min))


def _normal(u: float, mu: float, sigma: float) -> float:
    # sigma = 0 is allowed by W&B's schema; scipy would answer nan, the limit is mu.
    return float(mu) if sigma == 0 else _finite(_ndtri(u) * float(sigma) + float(mu))


def _log_normal(u: float, mu: float, sigma: float) -> float:
    """scipy.stats.lognorm.ppf(u, s=sigma, scale=exp(mu)), as W&B calls it.

    Computed as exp(sigma * z + mu) when exp(mu) alone would overflow (a huge sigma or mu).
    """
    mu = float(mu)
    if not sigma:
        return _exp(mu)
    z = float(sigma) * _ndtri(u)
    if abs(z) < _MAX_EXPONENT and abs(mu) < _MAX_EXPONENT:
        import numpy as np

        with np.errstate(over="ignore"):
            return _finite(float(np.exp(z) * np.exp(mu)))
    return _exp(_finite(z + mu))


@dataclass(frozen=True)
class _MuSigma(Distribution):
    mu: float = field(default=0.0, metadata=_NUMBER)
    sigma: float = field(default=1.0, metadata=_NUMBER)

    def _check(self) -> Iterator[tuple[str, str]]:
        if self.sigma < 0:
            yield "sigma", f"must be >= 0 (got {self.sigma})"


@dataclass(frozen=True)
class _QMuSigma(_MuSigma):
    q: float = field(default=1.0, metadata=_NUMBER)

    def _check(self) -> Iterator[tuple[str, str]]:
        yield from super()._check()
        yield from _positive(self, "q")


@dataclass(frozen=True)
class Normal(_MuSigma):
    name: ClassVar[str] = "normal"

    def ppf(self, u: float) -> float:
        return _normal(u, self.mu, self.sigma)


@dataclass(frozen=True)
class QNormal(_QMuSigma):
    name: ClassVar[str] = "q_normal"

    def ppf(self, u: float) -> int | float:
        return _quantize(_normal(u, self.mu, self.sigma), self.q)


@dataclass(frozen=True)
class LogNormal(_MuSigma):
    name: ClassVar[str] = "log_normal"

    def ppf(self, u: float) -> float:
        return _log_normal(u, self.mu, self.sigma)


@dataclass(frozen=True)
class QLogNormal(_QMuSigma):
    name: ClassVar[str] = "q_log_normal"

    def ppf(self, u: float) -> int | float:
        return _quantize(_log_normal(u, self.mu, self.sigma), self.q)


def _beta(u: float, a: float, b: float) -> float:
    from scipy.special import betaincinv  # type: ignore[import-untyped,unused-ignore]

    x = float(betaincinv(a, b, u))
    # scipy answers nan once a + b overflows; the law has then collapsed onto its mean.
    return 1.0 / (1.0 + float(b) / float(a)) if math.isnan(x) else x


@dataclass(frozen=True)
class _AB(Distribution):
    a: float = field(default=1.0, metadata=_NUMBER)
    b: float = field(default=1.0, metadata=_NUMBER)

    def _check(self) -> Iterator[tuple[str, str]]:
        # W&B's schema allows 0, where scipy's beta answers nan: we refuse it.
        yield from _positive(self, "a")
        yield from _positive(self, "b")


@dataclass(frozen=True)
class Beta(_AB):
    name: ClassVar[str] = "beta"

    def ppf(self, u: float) -> float:
        return _beta(u, self.a, self.b)


@dataclass(frozen=True)
class QBeta(_AB):
    name: ClassVar[str] = "q_beta"
    q: float = field(default=1.0, metadata=_NUMBER)

    def ppf(self, u: float) -> int | float:
        return _quantize(_beta(u, self.a, self.b), self.q)

    def _check(self) -> Iterator[tuple[str, str]]:
        yield from super()._check()
        yield from _positive(self, "q")


REGISTRY: dict[str, type[Distribution]] = {
    cls.name: cls
    for cls in (
        Constant,
        Categorical,
        WeightedCategorical,
        IntUniform,
        Uniform,
        QUniform,
        LogUniform,
        LogUniformValues,
        QLogUniform,
        QLogUniformValues,
        InvLogUniform,
        InvLogUniformValues,
        Normal,
        QNormal,
        LogNormal,
        QLogNormal,
        Beta,
        QBeta,
    )
}


# ---------------------------------------------------------------------------------------------
# Building a distribution from its W&B spec, every violation located.


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _kind_of(x: Any) -> str:
    """YAML's name for a value's type, for messages a config author understands."""
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "list"}
    if x is None:
        return "null"
    if isinstance(x, Mapping):
        return "mapping"
    return names.get(type(x), type(x).__name__)


def _got(x: Any) -> str:
    text = repr(x)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"got {_kind_of(x)} {text}" if x is not None else "got null"


def _json_problem(x: Any) -> str | None:
    """Why a value cannot be stored as JSON and handed to a program, or None."""
    if isinstance(x, float) and not math.isfinite(x):
        return f"{x} is not a JSON value"
    if x is None or isinstance(x, (str, bool, int, float)):
        return None
    if isinstance(x, list):
        return next((p for p in map(_json_problem, x) if p), None)
    if isinstance(x, dict):
        if any(not isinstance(k, str) for k in x):
            return "mapping keys must be strings"
        return next((p for p in map(_json_problem, x.values()) if p), None)
    return f"{_kind_of(x)} is not a JSON value"


_Problems = list[tuple[tuple[PathPart, ...], str]]


def _check_number(value: Any) -> _Problems:
    if not _is_number(value):
        return [((), f"must be a number ({_got(value)})")]
    return [] if math.isfinite(value) else [((), f"must be finite ({_got(value)})")]


def _check_int(value: Any) -> _Problems:
    if isinstance(value, int) and not isinstance(value, bool):
        return []
    return [((), f"must be an integer ({_got(value)})")]


def _check_json(value: Any) -> _Problems:
    problem = _json_problem(value)
    return [((), problem)] if problem else []


def _check_list(value: Any) -> _Problems:
    if not isinstance(value, list):
        return [((), f"must be a list ({_got(value)})")]
    return _check_json(value) if value else [((), "must not be empty")]


def _check_probs(value: Any) -> _Problems:
    out = _check_list(value)
    if out:
        return out
    for i, p in enumerate(value):
        if not _is_number(p) or not math.isfinite(p):
            out.append(((i,), f"must be a number ({_got(p)})"))
        elif p < 0:
            out.append(((i,), f"must be >= 0 (got {p})"))
    return out


_CHECKS = {
    "number": _check_number,
    "int": _check_int,
    "list": _check_list,
    "probs": _check_probs,
    "any": _check_json,
}


def infer(spec: Mapping[str, Any]) -> str | None:
    """W&B's name for a spec without `distribution`, or None when nothing fits.

    values (+ probabilities) -> categorical; value -> constant; min and max both integers ->
    int_uniform, otherwise uniform.
    """
    if "values" in spec:
        return "categorical_w_probabilities" if "probabilities" in spec else "categorical"
    if "value" in spec:
        return "constant"
    if "min" in spec or "max" in spec:
        ints = [isinstance(spec[k], int) and not isinstance(spec[k], bool) for k in ("min", "max") if k in spec]
        return "int_uniform" if all(ints) else "uniform"
    return None


def _resolve_name(spec: Mapping[str, Any], path: tuple[PathPart, ...]) -> tuple[str | None, list[Violation]]:
    """Which distribution a spec asks for: written, or inferred as W&B does."""
    if "distribution" not in spec:
        name = infer(spec)
        if name is None:
            keys = ", ".join(map(str, spec)) or "none"
            return None, [
                Violation(
                    path,
                    (
                        "cannot tell the distribution: give value, values, min and max, or "
                        f"distribution (keys given: {keys})"
                    ),
                )
            ]
        return name, []
    name = spec["distribution"]
    where = (*path, "distribution")
    if not isinstance(name, str):
        return None, [Violation(where, f"must be a string ({_got(name)})")]
    if name == "categorical" and "probabilities" in spec:
        return "categorical_w_probabilities", []
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, REGISTRY, n=1)
        close = [REGISTRY[c].deprecated_by or c for c in close]  # suggest the form to use, not a deprecated one
        hint = f"; did you mean {close[0]}?" if close else f" (one of: {', '.join(REGISTRY)})"
        return None, [Violation(where, f"'{name}' is not a distribution{hint}")]
    return name, []


def build(spec: Any, *, path: tuple[PathPart, ...] = ()) -> Distribution:
    """One parameter's spec (W&B form) -> its Distribution; ConfigError lists every problem.

    Types are checked before values are compared, so a string `min` reports "must be a number"
    and not a confusing comparison error.
    """
    if not isinstance(spec, Mapping):
        raise ConfigError([Violation(path, f"must be a mapping ({_got(spec)})")])
    name, problems = _resolve_name(spec, path)
    if name is None:
        raise ConfigError(problems)
    cls = REGISTRY[name]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in spec.items():
        if key == "distribution":
            continue
        if key not in fields:
            allowed = ", ".join(["distribution", *fields])
            problems.append(Violation((*path, key), f"unknown key for {name} (allowed: {allowed})"))
            continue
        found = _CHECKS[fields[key].metadata["kind"]](value)
        problems += [Violation((*path, key, *sub), msg) for sub, msg in found]
        kind = fields[key].metadata["kind"]
        kwargs[key] = tuple(value) if kind in ("list", "probs") and not found else value
    for key, f in fields.items():
        if key not in spec and f.default is dataclasses.MISSING:
            problems.append(Violation((*path, key), f"required for {name}"))
    if problems:
        raise ConfigError(problems)
    dist = cls(**kwargs)
    problems = [Violation((*path, key), msg) for key, msg in dist._check()]
    if problems:
        raise ConfigError(problems)
    return dist


# ---------------------------------------------------------------------------------------------
# The space: every leaf parameter by path.


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Space:
    """Every parameter (constants too) by tuple path, sorted: W&B's order at every level."""

    leaves: tuple[tuple[Path, Distribution], ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "leaves", tuple(sorted(self.leaves, key=lambda kv: kv[0])))

    @property
    def searchable(self) -> tuple[tuple[Path, Distribution], ...]:
        """The leaves a sampler or the grid varies: every one but the constants."""
        return tuple((p, d) for p, d in self.leaves if d.encoding != "const")

    def nest(self, flat: Mapping[Path, Any]) -> dict[str, Any]:
        """{("opt", "lr"): 0.1} -> {"opt": {"lr": 0.1}}: the config as the program sees it."""
        out: dict[str, Any] = {}
        for path, value in flat.items():
            node = out
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = value
        return out

    def flatten(self, nested: Mapping[str, Any]) -> dict[Path, Any]:
        """The inverse of nest, by this space's leaves (a dict-valued parameter stays whole).

        Leaves missing from `nested` are left out, so a caller can tell.
        """
        out: dict[Path, Any] = {}
        for path, _ in self.leaves:
            node: Any = nested
            for part in path:
                if not isinstance(node, Mapping) or part not in node:
                    break
                node = node[part]
            else:
                out[path] = node
        return out

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """One random-search draw: u ~ U[0, 1) per searchable leaf, in leaf order."""
        flat = {
            path: dist.ppf(float(rng.random())) if dist.encoding != "const" else dist.ppf(0.0)
            for path, dist in self.leaves
        }
        return self.nest(flat)

    def iter_grid(self) -> Iterator[dict[str, Any]]:
        """Grid points lazily: product over searchable leaves by path, the last fastest."""
        columns = [dist.grid_values() for _, dist in self.leaves]
        paths = [path for path, _ in self.leaves]
        for combo in itertools.product(*columns):
            yield self.nest({p: _fresh(v) for p, v in zip(paths, combo, strict=True)})

    def grid(self) -> list[dict[str, Any]]:
        """Every grid point in W&B order, equal values (by YAML) merged; ValueError if none."""
        return list(self.iter_grid())

    def grid_index(self) -> GridIndex:
        """Random access to the grid, in `iter_grid`'s order, without building it: a planner
        resumed at trial n of a million-point grid holds one column per parameter, not the grid."""
        return GridIndex(self)

    def grid_size(self) -> int:
        return math.prod(dist.grid_count() for _, dist in self.leaves)

    def to_dict(self) -> dict[str, Any]:
        """W&B `parameters:` form, normalized; groups as {"parameters": {...}}."""
        out: dict[str, Any] = {}
        for path, dist in self.leaves:
            node = out
            for part in path[:-1]:
                node = node.setdefault(part, {"parameters": {}})["parameters"]
            node[path[-1]] = dist.to_dict()
        return out

    @classmethod
    def from_normalized(cls, parameters: Mapping[str, Any], prefix: Path = ()) -> Space:
        """The inverse of `to_dict`, trusting its input (it was validated when written)."""
        leaves: list[tuple[Path, Distribution]] = []
        for name, spec in parameters.items():
            if "parameters" in spec:
                leaves.extend(cls.from_normalized(spec["parameters"], (*prefix, name)).leaves)
                continue
            dist_cls = REGISTRY[spec["distribution"]]
            kinds = {f.name: f.metadata["kind"] for f in dataclasses.fields(dist_cls)}
            kwargs = {
                k: tuple(v) if kinds[k] in ("list", "probs") else v for k, v in spec.items() if k != "distribution"
            }
            leaves.append(((*prefix, name), dist_cls(**kwargs)))
        return cls(tuple(leaves))

    @staticmethod
    def valid_name(name: Any) -> bool:
        """W&B's parameter-name pattern, at every nesting level."""
        return isinstance(name, str) and bool(_NAME.match(name))


class GridIndex:
    """Grid point n of a space, computed from n (mixed radix, the last parameter fastest)."""

    def __init__(self, space: Space) -> None:
        self._space = space
        self._paths = [path for path, _ in space.leaves]
        self._columns = [dist.grid_values() for _, dist in space.leaves]
        self._size = math.prod(len(c) for c in self._columns)

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, n: int) -> dict[str, Any]:
        if not 0 <= n < self._size:
            raise IndexError(n)
        flat: dict[Path, Any] = {}
        for path, column in zip(reversed(self._paths), reversed(self._columns), strict=True):
            n, i = divmod(n, len(column))
            flat[path] = _fresh(column[i])
        return self._space.nest(dict(reversed(list(flat.items()))))
