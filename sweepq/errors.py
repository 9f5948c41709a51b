"""Error types shared by every layer; imports nothing so the pure core can use them."""

from __future__ import annotations

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: `import sweepq` in a trial stays light
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["ConfigError", "ConnectionFailed", "NotFound", "SweepqError", "Violation"]

PathPart = str | int


class Violation:
    """One problem in a config, located by its key path so a person can find and fix it.

    A plain immutable value class, not a dataclass: every trial program that imports sweepq
    loads this module, and `dataclasses` costs it ~5 ms of imports."""

    __slots__ = ("path", "message")
    path: tuple[PathPart, ...]
    message: str

    def __init__(self, path: tuple[PathPart, ...], message: str) -> None:
        object.__setattr__(self, "path", tuple(path))
        object.__setattr__(self, "message", message)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Violation is immutable: cannot set {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Violation):
            return NotImplemented
        return (self.path, self.message) == (other.path, other.message)

    def __hash__(self) -> int:
        return hash((self.path, self.message))

    def __repr__(self) -> str:
        return f"Violation(path={self.path!r}, message={self.message!r})"

    def __str__(self) -> str:
        where = ".".join(str(p) for p in self.path)
        return f"{where}: {self.message}" if where else self.message


class SweepqError(Exception):
    """Anything a user can act on: the CLI prints it as one message and exits 2."""


class ConfigError(SweepqError):
    """Every violation found in a sweep config, not just the first."""

    def __init__(self, violations: Sequence[Violation]) -> None:
        self.violations = tuple(violations)
        super().__init__("\n".join(str(v) for v in self.violations))


class ConnectionFailed(SweepqError):
    """Redis could not be reached or the URL is unusable."""


class NotFound(SweepqError):
    """A sweep or trial id that Redis does not know."""
