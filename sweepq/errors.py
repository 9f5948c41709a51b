"""Error types shared by every layer; imports nothing so the pure core can use them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ConfigError", "ConnectionFailed", "NotFound", "SweepqError", "Violation"]

PathPart = str | int


@dataclass(frozen=True)
class Violation:
    """One problem in a config, located by its key path so a person can find and fix it."""

    path: tuple[PathPart, ...]
    message: str

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
