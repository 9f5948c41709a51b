"""sweepq: self-hosted hyperparameter sweeps in the W&B Sweeps language on Redis + RQ.

`import sweepq` stays light: the SDK names are loaded on first use, so a training script pays
for numpy, optuna or redis only when it actually talks to a sweep.

`import sweepq as wandb` runs a W&B script: `init`, `log`, `finish`, `sweep`, `agent`, the
module-level `config`, `run` and `summary`, and wandb's helper names (`Table`, `Image`, `plot`,
`watch`, `save`, `login`...; see sweepq.wandb_compat). `sweepq.config` is the run's config, as
`wandb.config` is, even though a submodule `sweepq.config` (the sweep config parser) exists:
the package's module class has `config`, `run` and `summary` properties, which win over the
attribute the import system sets when it loads a submodule of that name (renaming the parser
module would have touched every module). Import the parser by its full name (`from
sweepq.config import load`); code that still does `from sweepq import config as cfgmod` (cli.py,
launch.py) keeps working because the run config falls back to the parser module's names for
attributes that are not config keys, which is safe in processes without a run.
"""

import sys

# Not `typing.TYPE_CHECKING`: a trial program's `import sweepq` should not load `typing`.
TYPE_CHECKING = False

# Not `types.ModuleType`: `types` and `sweepq.errors` are loaded only when used, since every
# trial program that imports sweepq pays for what this module imports (~0.2 ms each here).
if TYPE_CHECKING:
    from types import ModuleType as _ModuleType
else:
    _ModuleType = type(sys)

__version__ = "0.2.0"

__all__ = [
    "__version__",
    "AlertLevel",
    "Api",
    "Artifact",
    "Audio",
    "Config",
    "ConfigError",
    "Histogram",
    "Html",
    "Image",
    "Molecule",
    "Object3D",
    "Run",
    "Settings",
    "Stopped",
    "SweepqError",
    "Table",
    "Video",
    "agent",
    "alert",
    "config",
    "define_metric",
    "finish",
    "init",
    "log",
    "log_artifact",
    "login",
    "mark_preempting",
    "plot",
    "require",
    "restore",
    "run",
    "save",
    "setup",
    "summary",
    "sweep",
    "teardown",
    "termerror",
    "termlog",
    "termwarn",
    "unwatch",
    "use_artifact",
    "watch",
]

if TYPE_CHECKING:
    from typing import Any

    from sweepq.api import agent, sweep
    from sweepq.errors import ConfigError, SweepqError
    from sweepq.sdk import Config, Run, Stopped, finish, init, log
    from sweepq.wandb_compat import (
        AlertLevel,
        Api,
        Artifact,
        Audio,
        Histogram,
        Html,
        Image,
        Molecule,
        Object3D,
        Settings,
        Table,
        Video,
        alert,
        define_metric,
        log_artifact,
        login,
        mark_preempting,
        plot,
        require,
        restore,
        save,
        setup,
        teardown,
        termerror,
        termlog,
        termwarn,
        unwatch,
        use_artifact,
        watch,
    )

    config: "Any"
    run: "Run | None"
    summary: "Any"

_LAZY = {
    "ConfigError": "sweepq.errors",
    "SweepqError": "sweepq.errors",
    "Config": "sweepq.sdk",
    "Run": "sweepq.sdk",
    "Stopped": "sweepq.sdk",
    "finish": "sweepq.sdk",
    "init": "sweepq.sdk",
    "log": "sweepq.sdk",
    "agent": "sweepq.api",
    "sweep": "sweepq.api",
}
_COMPAT = (
    "AlertLevel Api Artifact Audio Histogram Html Image Molecule Object3D Settings Table Video alert define_metric "
    "log_artifact login mark_preempting plot require restore save setup teardown termerror termlog termwarn "
    "unwatch use_artifact watch"
).split()
_LAZY.update(dict.fromkeys(_COMPAT, "sweepq.wandb_compat"))


def __getattr__(name: str) -> "Any":
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sweepq' has no attribute {name!r}")
    __import__(module)  # not importlib's import_module: `importlib` costs a trial ~1 ms
    value = getattr(sys.modules[module], name)
    globals()[name] = value
    return value


class _RunConfig:
    """`sweepq.config`: the current run's config (before `init()`, what `init()` will start
    from). Item and attribute access, as `wandb.config`."""

    def _target(self) -> "Any":
        from sweepq import sdk

        run = sdk.current()
        return sdk._preinit if run is None else run.config

    def __getattr__(self, key: str) -> "Any":
        target = self._target()
        try:
            return getattr(target, key)
        except AttributeError:
            if key.startswith("__"):
                raise
            import importlib

            module = importlib.import_module("sweepq.config")  # `from sweepq import config as cfgmod` callers
            if hasattr(module, key):
                return getattr(module, key)
            raise

    def __setattr__(self, key: str, value: "Any") -> None:
        setattr(self._target(), key, value)

    def __getitem__(self, key: str) -> "Any":
        return self._target()[key]

    def __setitem__(self, key: str, value: "Any") -> None:
        self._target()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._target()[key]

    def __contains__(self, key: object) -> bool:
        return key in self._target()

    def __iter__(self) -> "Any":
        return iter(self._target())

    def __len__(self) -> int:
        return len(self._target())

    def __repr__(self) -> str:
        return repr(self._target())

    def keys(self) -> "Any":
        return self._target().keys()

    def items(self) -> "Any":
        return self._target().items()

    def values(self) -> "Any":
        return self._target().values()

    def get(self, key: str, default: "Any" = None) -> "Any":
        return self._target().get(key, default)


class _RunSummary:
    """`sweepq.summary`: the current run's summary (empty before `init()`)."""

    def _target(self) -> "Any":
        from sweepq import sdk

        run = sdk.current()
        return sdk.Summary() if run is None else run.summary

    def __getattr__(self, key: str) -> "Any":
        return getattr(self._target(), key)

    def __setattr__(self, key: str, value: "Any") -> None:
        self._target()[key] = value

    def __getitem__(self, key: str) -> "Any":
        return self._target()[key]

    def __setitem__(self, key: str, value: "Any") -> None:
        self._target()[key] = value

    def __contains__(self, key: object) -> bool:
        return key in self._target()

    def __iter__(self) -> "Any":
        return iter(self._target())

    def __repr__(self) -> str:
        return repr(self._target())

    def update(self, *args: "Any", **kwargs: "Any") -> None:
        self._target().update(*args, **kwargs)


_CONFIG = _RunConfig()
_SUMMARY = _RunSummary()


class _Package(_ModuleType):
    """Properties beat the submodule attribute `import sweepq.config` sets on the package."""

    @property
    def config(self) -> "Any":
        return _CONFIG

    @config.setter
    def config(self, value: "Any") -> None:
        if not isinstance(value, _ModuleType):  # the import system's setattr is dropped
            raise AttributeError("sweepq.config is the run's config: set its keys instead")

    @property
    def run(self) -> "Any":
        from sweepq import sdk

        return sdk.current()

    @property
    def summary(self) -> "Any":
        return _SUMMARY


sys.modules[__name__].__class__ = _Package
