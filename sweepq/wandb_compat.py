"""wandb's media and helper names, so `import sweepq as wandb` runs a W&B script unchanged.

There is no W&B server behind sweepq, so these are accepted and kept as plain data, never sent
anywhere: a media object logged in a row is recorded as a short text (`<Table>`), `save`,
`watch`, `login` and friends do nothing and say so in their docstrings, `alert` and `term*`
print to stderr (the trial's output keeps the line). Nothing here imports numpy or torch.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = [
    "AlertLevel",
    "Api",
    "Artifact",
    "Audio",
    "Chart",
    "Html",
    "Histogram",
    "Image",
    "Metric",
    "Molecule",
    "Object3D",
    "Settings",
    "Table",
    "Video",
    "alert",
    "define_metric",
    "log_artifact",
    "login",
    "mark_preempting",
    "plot",
    "require",
    "restore",
    "save",
    "setup",
    "teardown",
    "termerror",
    "termlog",
    "termwarn",
    "unwatch",
    "use_artifact",
    "watch",
]


class _Media:
    """A logged object sweepq keeps only as its arguments (it has no media store)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class Image(_Media):
    pass


class Audio(_Media):
    pass


class Video(_Media):
    pass


class Html(_Media):
    pass


class Object3D(_Media):
    pass


class Molecule(_Media):
    pass


class Histogram(_Media):
    def __init__(self, sequence: Any = None, np_histogram: Any = None, num_bins: int = 64) -> None:
        super().__init__(sequence, np_histogram=np_histogram, num_bins=num_bins)


class Table(_Media):
    """Rows kept in memory (`add_data`, `data`, `columns`, `get_column`), logged as `<Table>`."""

    def __init__(
        self,
        columns: list[str] | None = None,
        data: list[list[Any]] | None = None,
        rows: list[list[Any]] | None = None,
        dataframe: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if dataframe is not None:
            columns = [str(c) for c in dataframe.columns]
            data = dataframe.values.tolist()
        self.columns: list[str] = list(columns or [])
        self.data: list[list[Any]] = [list(r) for r in (data if data is not None else rows or [])]

    def add_data(self, *values: Any) -> None:
        self.data.append(list(values))

    def add_column(self, name: str, data: list[Any]) -> None:
        self.columns.append(name)
        for row, value in zip(self.data, data, strict=False):
            row.append(value)

    def get_column(self, name: str, convert_to: str | None = None) -> list[Any]:
        i = self.columns.index(name)
        return [row[i] for row in self.data]


class _Plot:
    """`wandb.plot.line(...)`, `plot.confusion_matrix(...)`...: any chart, kept as `<Chart>`."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)

        def chart(*args: Any, **kwargs: Any) -> _Media:
            return Chart(name, *args, **kwargs)

        return chart


class Chart(_Media):
    def __init__(self, kind: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kind = kind


plot = _Plot()


class Artifact:
    """Files named by an artifact stay where they are; nothing is uploaded or versioned."""

    def __init__(
        self, name: str, type: str = "", description: str | None = None, metadata: Any = None, **_: Any
    ) -> None:  # noqa: A002
        self.name, self.type, self.description = name, type, description
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.files: list[str] = []
        self.aliases: list[str] = []
        self.version = "v0"

    def add_file(self, local_path: str, name: str | None = None, **_: Any) -> None:
        self.files.append(local_path)

    def add_dir(self, local_path: str, name: str | None = None, **_: Any) -> None:
        self.files.append(local_path)

    def add_reference(self, uri: str, name: str | None = None, **_: Any) -> None:
        self.files.append(uri)

    def add(self, obj: Any, name: str, **_: Any) -> None:
        self.files.append(name)

    def new_file(self, name: str, mode: str = "x", encoding: str | None = None) -> Any:
        import os
        import tempfile

        path = os.path.join(tempfile.mkdtemp(prefix="sweepq-artifact-"), name)
        self.files.append(path)
        return open(path, mode.replace("x", "w"), encoding=encoding)  # noqa: SIM115 - the caller closes it

    def download(self, root: str | None = None, **_: Any) -> str:
        """There is no artifact store: the directory of the first file added, or '.'."""
        import os

        return root or (os.path.dirname(self.files[0]) if self.files else ".")

    def wait(self, *args: Any, **kwargs: Any) -> Artifact:
        return self

    def save(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __repr__(self) -> str:
        return f"<Artifact {self.name}>"


class Metric:
    """What `define_metric` returns in wandb."""

    def __init__(self, name: str, *, step_metric: Any = None, summary: str | None = None, goal: str | None = None):
        self.name, self.step_metric, self.summary, self.goal = name, step_metric, summary, goal


class Settings:
    """`wandb.Settings(...)`: every keyword accepted and kept as an attribute, none acted on."""

    def __init__(self, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return None


class Api:
    """`wandb.Api()`: there is no W&B server to query; use `sweepq trials ID --json`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        raise NotImplementedError(f"wandb.Api().{name}: sweepq has no W&B server; see `sweepq trials ID --json`")


def _run() -> Any:
    from sweepq import sdk

    return sdk.current()


def define_metric(name: str, *args: Any, **kwargs: Any) -> Metric:
    from sweepq import sdk

    run = sdk.current() or sdk.init()
    result: Metric = run.define_metric(name, *args, **kwargs)
    return result


def log_artifact(artifact: Any, *args: Any, **kwargs: Any) -> Any:
    return artifact


def use_artifact(artifact_or_name: Any, type: str | None = None, **_: Any) -> Any:  # noqa: A002
    """An Artifact named as asked, holding nothing (there is no artifact store)."""
    if isinstance(artifact_or_name, Artifact):
        return artifact_or_name
    name = str(artifact_or_name).rsplit("/", 1)[-1]
    return Artifact(name, type=type or "")


def watch(*args: Any, **kwargs: Any) -> None:
    """Accepted and ignored: no gradients or parameters are recorded."""
    return None


def unwatch(*args: Any, **kwargs: Any) -> None:
    return None


def save(*args: Any, **kwargs: Any) -> bool:
    """Accepted and ignored: files stay where the script wrote them."""
    return True


def restore(name: str, *args: Any, **kwargs: Any) -> None:
    """Nothing to restore from: returns None, as wandb does for a file it cannot find."""
    return None


def login(*args: Any, **kwargs: Any) -> bool:
    """Accepted: sweepq needs no account."""
    return True


def setup(*args: Any, **kwargs: Any) -> None:
    return None


def teardown(*args: Any, **kwargs: Any) -> None:
    return None


def require(*args: Any, **kwargs: Any) -> None:
    return None


def mark_preempting() -> None:
    run = _run()
    if run is not None:
        run.mark_preempting()


def alert(title: str = "", text: str = "", level: Any = None, wait_duration: Any = None) -> None:
    print(f"wandb alert: {title}: {text}", file=sys.stderr)


def termlog(string: str = "", newline: bool = True, repeat: bool = True, prefix: bool = True) -> None:
    print(("wandb: " if prefix else "") + str(string), file=sys.stderr, end="\n" if newline else "")


def termwarn(string: str, **kwargs: Any) -> None:
    print(f"wandb: WARNING {string}", file=sys.stderr)


def termerror(string: str, **kwargs: Any) -> None:
    print(f"wandb: ERROR {string}", file=sys.stderr)


class AlertLevel:
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"
