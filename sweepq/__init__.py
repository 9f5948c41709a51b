"""sweepq: self-hosted hyperparameter sweeps in the W&B Sweeps language on Redis + RQ.

`import sweepq` stays light: the SDK names are loaded on first use, so a training script pays
for numpy, optuna or redis only when it actually talks to a sweep.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sweepq.errors import ConfigError, SweepqError

__version__ = "0.2.0"

__all__ = [
    "__version__",
    "Config",
    "ConfigError",
    "Run",
    "Stopped",
    "SweepqError",
    "agent",
    "finish",
    "init",
    "log",
    "sweep",
]

if TYPE_CHECKING:
    from sweepq.api import agent, sweep
    from sweepq.sdk import Config, Run, Stopped, finish, init, log

_LAZY = {
    "Config": "sweepq.sdk",
    "Run": "sweepq.sdk",
    "Stopped": "sweepq.sdk",
    "finish": "sweepq.sdk",
    "init": "sweepq.sdk",
    "log": "sweepq.sdk",
    "agent": "sweepq.api",
    "sweep": "sweepq.api",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sweepq' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
