"""The records every service shares: trial and sweep states, a sweep's settings, Sweep and Trial.

This is the typed seam between Redis and the services. `Store` turns hashes into these records
and back; nothing else reads raw hash fields, casts settings or compares state strings. A sweep's
config is parsed once per process from its stored, normalized form (it was validated when the
sweep was created) and never re-validated.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sweepq.config import SweepConfig

__all__ = [
    "DEFAULT_QUEUE",
    "ENDED_TRIAL_STATES",
    "Metric",
    "Settings",
    "StopKind",
    "Sweep",
    "SweepState",
    "Trial",
    "TrialState",
    "job_id",
    "random_seed",
]

DEFAULT_QUEUE = "sweepq"


class TrialState(StrEnum):
    """A trial's state. Equal to its string, which is what Redis and the Lua scripts hold."""

    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CRASHED = "crashed"  # its worker was lost more than max_attempts times
    PRUNED = "pruned"
    KILLED = "killed"  # stopped by a person (or a cancelled sweep) while running
    CANCELLED = "cancelled"  # ended before it ever started

    @property
    def ended(self) -> bool:
        return self not in (TrialState.QUEUED, TrialState.RUNNING)

    @property
    def told_as(self) -> str:
        """What the sampler learns from this end: a crash counts as a failure (the point may
        crash the program, so it gets the worst value told so far, W&B's impute rule); a kill
        or a cancellation says nothing about the point."""
        return _TOLD_AS.get(self, self.value)


_TOLD_AS = {TrialState.CRASHED: "failed", TrialState.KILLED: "cancelled"}
ENDED_TRIAL_STATES = tuple(s for s in TrialState if s.ended)


class SweepState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"  # no trial starts; queued trials wait
    STOPPED = "stopped"  # no new trials; running ones finish (resumable)
    CANCELLED = "cancelled"
    FINISHED = "finished"

    @property
    def closed(self) -> bool:
        """No new trial may be created or started: the planner ends once nothing is active."""
        return self in (SweepState.STOPPED, SweepState.CANCELLED, SweepState.FINISHED)


class StopKind(StrEnum):
    """Why a running trial was asked to stop; the finish script turns it into the end state."""

    PRUNE = "prune"
    KILL = "kill"
    CANCEL = "cancel"


@dataclass(frozen=True)
class Metric:
    """The sweep's metric. The one place that knows what "better" means for it."""

    name: str
    goal: str = "minimize"
    target: float | None = None

    @property
    def maximize(self) -> bool:
        return self.goal == "maximize"

    def better(self, a: float, b: float) -> bool:
        """Is `a` strictly better than `b`?"""
        return a > b if self.maximize else a < b

    def reached(self, value: float) -> bool:
        """Has `value` reached the target (none: never)?"""
        if self.target is None:
            return False
        return value >= self.target if self.maximize else value <= self.target

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "goal": self.goal}
        if self.target is not None:
            out["target"] = self.target
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Metric:
        target = data.get("target")
        return cls(str(data["name"]), str(data.get("goal", "minimize")), None if target is None else float(target))


def _setting(default: Any, help: str) -> Any:  # noqa: A002 - the CLI's word
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    """Everything about how a sweep runs that is not the W&B config. Owns every default: the
    CLI, the planner, the runner and the SDK read them from here only."""

    heartbeat_timeout: float = _setting(60.0, "seconds without a heartbeat before a worker is taken for dead")
    max_attempts: int = _setting(3, "attempts per trial when workers die")
    grace: float = _setting(10.0, "seconds from SIGTERM to SIGKILL")
    time_limit: float = _setting(0.0, "per-trial time limit in seconds (0 = none)")
    metric_cap: int = _setting(10_000, "log() records kept per trial")
    log_cap: int = _setting(1_000, "stdout/stderr lines kept per trial")
    stream_cap: int = _setting(1_000_000, "entries kept in a sweep's metric stream")
    fail_pause: int = _setting(5, "pause when this many first trials all failed (0 = never)")
    queue: str = _setting(DEFAULT_QUEUE, "RQ queue name")
    seed: int = _setting(0, "sampler seed")
    workdir: str = _setting("", "the directory the sweep was created in")
    algorithm: str = _setting("auto", "bayes sampler: auto, tpe or gp")
    retention: float = _setting(0.0, "seconds to keep a sweep's records after it ends (0 = forever)")

    @classmethod
    def help(cls, name: str) -> str:
        return str(next(f.metadata["help"] for f in fields(cls) if f.name == name))

    def encode(self) -> dict[str, str | int | float]:
        """The sweep-hash fields."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def decode(cls, h: Mapping[str, str]) -> Settings:
        kwargs: dict[str, Any] = {}
        defaults = cls()
        for f in fields(cls):
            if f.name in h:
                kwargs[f.name] = type(getattr(defaults, f.name))(h[f.name])
        return cls(**kwargs)

    @property
    def heartbeat_interval(self) -> float:
        """Four beats per timeout, between 0.2 and 2 s: a lost worker is seen within one timeout."""
        return min(2.0, max(0.2, self.heartbeat_timeout / 4))

    @property
    def lease_ttl(self) -> float:
        """A planner or pruner is judged dead as fast as a worker: one heartbeat timeout."""
        return min(15.0, max(3.0, self.heartbeat_timeout))

    @property
    def job_timeout(self) -> int:
        """RQ's 180 s default timeout must never kill a trial: none unless the sweep sets a time
        limit (the runner enforces it; RQ's limit is only a backstop)."""
        return -1 if self.time_limit <= 0 else int(self.time_limit + 4 * self.grace + 120)


def random_seed() -> int:
    """A fresh sampler seed for a sweep created without one."""
    import secrets

    return secrets.randbelow(2**31)


def job_id(sweep_id: str, number: int, attempt: int) -> str:
    """Deterministic, so a re-enqueue after a crash overwrites rather than duplicates. The Lua
    scripts build the same id (`_prelude.lua`) where they increment the attempt."""
    return f"sweepq-{sweep_id}-{number}-{attempt}"


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _decode_hash(raw: Mapping[bytes, bytes] | Mapping[str, str]) -> dict[str, str]:
    return {_s(k): _s(v) for k, v in raw.items()}


def _f(value: str | None) -> float | None:
    return None if value is None or value == "" else float(value)


@dataclass(frozen=True)
class Sweep:
    """A sweep's record: config, state, settings and per-state trial counts.

    `raw_config` is the normalized config the sweep was created with (validated then);
    `config` parses it on first use without validating again, and `metric` needs no parse at
    all, so a trial program's SDK never loads the config machinery (numpy)."""

    id: str
    state: SweepState
    raw_config: Mapping[str, Any]
    settings: Settings
    counts: Mapping[str, int]  # by TrialState (a str): every state present
    created: int  # trials created so far (the next trial's number)
    cap: int | None
    created_at: float
    state_reason: str | None
    failures_waived: bool = False  # resumed by a person after the fail pause: never pause again
    state_by_user: bool = False  # the last state change was a person's, not sweepq's own
    signature: str | None = None  # the owner's signature of the config (sweepq.trust)

    @classmethod
    def from_fields(cls, sweep_id: str, h: Mapping[str, str], raw_config: Mapping[str, Any]) -> Sweep:
        return cls(
            id=sweep_id,
            state=SweepState(h["state"]),
            raw_config=raw_config,
            settings=Settings.decode(h),
            counts={s: int(h.get(f"n:{s}", 0)) for s in TrialState},
            created=int(h.get("next", 0)),
            cap=int(h["cap"]) if h.get("cap") else None,
            created_at=float(h.get("created_at", 0)),
            state_reason=h.get("state_reason") or None,
            failures_waived=bool(h.get("failures_waived")),
            state_by_user=h.get("state_by") == "user",
            signature=h.get("sig") or None,
        )

    @property
    def queue(self) -> str:
        return self.settings.queue

    @cached_property
    def config(self) -> SweepConfig:
        from sweepq.config import SweepConfig

        return SweepConfig.from_normalized(self.raw_config)

    @cached_property
    def metric(self) -> Metric | None:
        raw = self.raw_config.get("metric")
        return None if raw is None else Metric.from_dict(raw)

    @property
    def active(self) -> int:
        return self.counts[TrialState.QUEUED] + self.counts[TrialState.RUNNING]

    @property
    def failed(self) -> int:
        return self.counts[TrialState.FAILED] + self.counts[TrialState.CRASHED]


@dataclass(frozen=True)
class Trial:
    """One trial as stored: what the planner, pruner, status and report read."""

    sweep_id: str
    number: int
    state: TrialState
    params: dict[str, Any]
    encoded: dict[str, Any]
    attempt: int
    job_id: str
    worker: str | None = None
    host: str | None = None
    exit_code: int | None = None
    created_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    heartbeat: float | None = None
    best: float | None = None
    last: float | None = None
    history_len: int = 0
    logged: int = 0
    dropped: int = 0
    reason: str | None = None
    stop: StopKind | None = None
    stop_reason: str | None = None
    preemptions: int = 0
    preempting: bool = False
    uses_sdk: bool = False
    summary: dict[str, Any] = field(default_factory=dict)
    signature: str | None = None  # the owner's signature of (sweep, number, params): sweepq.trust

    @property
    def id(self) -> str:
        return f"{self.sweep_id}/{self.number}"

    @classmethod
    def from_hash(cls, sweep_id: str, raw: Mapping[bytes, bytes] | Mapping[str, str]) -> Trial:
        h = _decode_hash(raw)
        code = h.get("exit_code")
        return cls(
            sweep_id=sweep_id,
            number=int(h["number"]),
            state=TrialState(h["state"]),
            params=json.loads(h.get("params", "{}")),
            encoded=json.loads(h.get("encoded", "{}")),
            attempt=int(h.get("attempt", 1)),
            job_id=h.get("job_id", ""),
            worker=h.get("worker"),
            host=h.get("host"),
            exit_code=int(code) if code not in (None, "") else None,
            created_at=_f(h.get("created_at")),
            started_at=_f(h.get("started_at")),
            ended_at=_f(h.get("ended_at")),
            heartbeat=_f(h.get("heartbeat")),
            best=_f(h.get("best")),
            last=_f(h.get("last")),
            history_len=int(h.get("history_len", 0)),
            logged=int(h.get("logged", 0)),
            dropped=int(h.get("dropped", 0)),
            reason=h.get("reason") or None,
            stop=StopKind(h["stop"]) if h.get("stop") else None,
            stop_reason=h.get("stop_reason") or None,
            preemptions=int(h.get("preemptions", 0)),
            preempting=bool(h.get("preempting")),
            uses_sdk=bool(h.get("sdk")),
            summary=json.loads(h.get("summary", "{}")),
            signature=h.get("sig") or None,
        )

    def as_dict(self) -> dict[str, Any]:
        """The public JSON shape (`sweepq trials --json`)."""
        stopped = self.state in (TrialState.PRUNED, TrialState.KILLED) and self.stop_reason
        return {
            "id": self.id,
            "number": self.number,
            "state": str(self.state),
            "params": self.params,
            "last": self.last,
            "best": self.best,
            "history_len": self.history_len,
            "exit_code": self.exit_code,
            "attempts": self.attempt,
            "worker": self.worker,
            "host": self.host,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "reason": self.stop_reason if stopped else self.reason,
            "preemptions": self.preemptions,
            "summary": self.summary,
        }
