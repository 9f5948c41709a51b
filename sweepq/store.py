"""The Redis state model: every key name, every state change (one Lua script each), records.

Redis is the single source of truth. Each trial state change is one atomic script (see
`sweepq/lua/`), fenced by the trial's attempt number, so a crash of any process at any point
leaves a state from which a restart continues. Every key of a sweep carries the `{sweep_id}` hash
tag so the whole sweep lives in one Redis Cluster slot.
"""

from __future__ import annotations

import json
import math
import secrets
import string
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, cast

import redis

from sweepq.errors import NotFound

__all__ = [
    "ACTIVE_STATES",
    "ENDED_STATES",
    "STATES",
    "Keys",
    "Store",
    "Sweep",
    "Trial",
    "job_id",
]

STATES = ("queued", "running", "finished", "failed", "crashed", "pruned", "killed", "cancelled")
ACTIVE_STATES = ("queued", "running")
ENDED_STATES = tuple(s for s in STATES if s not in ACTIVE_STATES)
SWEEP_STATES = ("running", "paused", "stopped", "cancelled", "finished")

DEFAULTS: dict[str, Any] = {
    "heartbeat_timeout": 60.0,  # seconds without a heartbeat before a worker is taken for dead
    "max_attempts": 3,
    "grace": 10.0,  # seconds between SIGTERM and SIGKILL
    "time_limit": 0.0,  # per trial, 0 = none
    "metric_cap": 10_000,  # log() records kept per trial
    "log_cap": 1_000,  # stdout/stderr lines kept per trial
    "stream_cap": 1_000_000,  # entries kept in a sweep's metric stream
    "fail_pause": 5,  # pause when this many first trials all failed (0 = never)
}


class Keys:
    """Every Redis key sweepq writes, built in one place."""

    SWEEPS = "sweepq:sweeps"

    def __init__(self, sweep_id: str) -> None:
        self.sweep_id = sweep_id
        self.prefix = f"sweepq:{{{sweep_id}}}"

    @property
    def sweep(self) -> str:
        return f"{self.prefix}:sweep"

    @property
    def events(self) -> str:
        return f"{self.prefix}:events"

    @property
    def metrics(self) -> str:
        return f"{self.prefix}:metrics"

    @property
    def queued(self) -> str:
        return f"{self.prefix}:queued"

    @property
    def running(self) -> str:
        return f"{self.prefix}:running"

    def lease(self, role: str) -> str:
        return f"{self.prefix}:lease:{role}"

    def trial(self, number: int) -> str:
        return f"{self.prefix}:trial:{number}"

    def history(self, number: int) -> str:
        return f"{self.prefix}:hist:{number}"

    def log(self, number: int) -> str:
        return f"{self.prefix}:log:{number}"

    def stop(self, number: int) -> str:
        return f"{self.prefix}:stop:{number}"

    def transition(self, number: int) -> list[str]:
        """The five KEYS every trial transition script takes, in order."""
        return [self.sweep, self.trial(number), self.queued, self.running, self.events]

    def new_attempt(self, number: int) -> list[str]:
        """The KEYS of a transition that may start a new attempt (it clears the history)."""
        return [*self.transition(number), self.history(number)]


def job_id(sweep_id: str, number: int, attempt: int) -> str:
    """Deterministic, so a re-enqueue after a crash overwrites rather than duplicates."""
    return f"sweepq-{sweep_id}-{number}-{attempt}"


def _new_sweep_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


@cache
def _script_source(name: str) -> str:
    lua = resources.files("sweepq") / "lua"
    body = (lua / f"{name}.lua").read_text()
    if name in ("log", "set_sweep_state"):
        return body
    return (lua / "_prelude.lua").read_text() + "\n" + body


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _f(value: Any) -> float | None:
    return None if value is None else float(_s(value))


@dataclass(frozen=True)
class Trial:
    """One trial as stored: what the planner, pruner, status and report read."""

    sweep_id: str
    number: int
    state: str
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
    stop: str | None = None
    stop_reason: str | None = None
    preemptions: int = 0
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.sweep_id}/{self.number}"

    @classmethod
    def from_hash(cls, sweep_id: str, raw: Mapping[bytes, bytes]) -> Trial:
        h = {_s(k): _s(v) for k, v in raw.items()}
        code = h.get("exit_code")
        return cls(
            sweep_id=sweep_id,
            number=int(h["number"]),
            state=h["state"],
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
            stop=h.get("stop") or None,
            stop_reason=h.get("stop_reason") or None,
            preemptions=int(h.get("preemptions", 0)),
            summary=json.loads(h.get("summary", "{}")),
        )

    def as_dict(self) -> dict[str, Any]:
        """The public JSON shape (`sweepq trials --json`)."""
        return {
            "id": self.id,
            "number": self.number,
            "state": self.state,
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
            "reason": self.stop_reason if self.state in ("pruned", "killed") and self.stop_reason else self.reason,
            "preemptions": self.preemptions,
            "summary": self.summary,
        }


@dataclass(frozen=True)
class Sweep:
    """A sweep's hash: its config (normalized JSON), state, settings and per-state counts."""

    id: str
    state: str
    config: dict[str, Any]
    settings: dict[str, Any]
    counts: dict[str, int]
    created: int
    cap: int | None
    created_at: float
    state_reason: str | None

    @classmethod
    def from_hash(cls, sweep_id: str, raw: Mapping[bytes, bytes]) -> Sweep:
        h = {_s(k): _s(v) for k, v in raw.items()}
        settings = {k: type(v)(h[k]) if k in h else v for k, v in DEFAULTS.items()}
        settings["queue"] = h.get("queue", "sweepq")
        settings["seed"] = int(h.get("seed", 0))
        settings["workdir"] = h.get("workdir", "")
        settings["algorithm"] = h.get("algorithm", "auto")
        return cls(
            id=sweep_id,
            state=h["state"],
            config=json.loads(h["config"]),
            settings=settings,
            counts={s: int(h.get(f"n:{s}", 0)) for s in STATES},
            created=int(h.get("next", 0)),
            cap=int(h["cap"]) if h.get("cap") else None,
            created_at=float(h.get("created_at", 0)),
            state_reason=h.get("state_reason") or None,
        )

    @property
    def queue(self) -> str:
        return str(self.settings["queue"])

    @property
    def active(self) -> int:
        return self.counts["queued"] + self.counts["running"]


class Store:
    """Typed access to one Redis: reads return records, writes are the Lua transitions."""

    def __init__(self, r: redis.Redis, *, now: Callable[[], float] = time.time) -> None:
        self.r = r
        self.now = now
        self._scripts: dict[str, Any] = {}

    def _run(self, name: str, keys: list[str], args: Iterable[Any]) -> Any:
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.r.register_script(_script_source(name))
        result = script(keys=keys, args=[_arg(a) for a in args])
        if isinstance(result, list):
            return [_s(x) for x in result]
        return _s(result)

    # --- sweeps -----------------------------------------------------------------------------

    def create_sweep(
        self,
        config: Mapping[str, Any],
        *,
        queue: str = "sweepq",
        seed: int | None = None,
        cap: int | None = None,
        sweep_id: str | None = None,
        **settings: Any,
    ) -> str:
        """Write a new sweep; `config` is the normalized config dict (SweepConfig.to_dict())."""
        sid = sweep_id or _new_sweep_id()
        unknown = set(settings) - set(DEFAULTS) - {"workdir", "algorithm"}
        if unknown:
            raise TypeError(f"unknown sweep settings: {sorted(unknown)}")
        fields: dict[str, Any] = {
            "id": sid,
            "state": "running",
            "config": json.dumps(config),
            "queue": queue,
            "seed": secrets.randbelow(2**31) if seed is None else seed,
            "created_at": self.now(),
            "next": 0,
            **{k: settings.get(k, v) for k, v in DEFAULTS.items()},
        }
        for k in ("workdir", "algorithm"):
            if k in settings:
                fields[k] = settings[k]
        if cap is not None:
            fields["cap"] = cap
        keys = Keys(sid)
        if not self.r.hsetnx(keys.sweep, "id", sid):
            raise ValueError(f"sweep {sid} exists")
        pipe = self.r.pipeline()
        pipe.hset(keys.sweep, mapping={k: _arg(v) for k, v in fields.items()})
        pipe.zadd(Keys.SWEEPS, {sid: fields["created_at"]})
        pipe.execute()
        return sid

    def sweep(self, sweep_id: str) -> Sweep:
        raw = cast(dict[bytes, bytes], self.r.hgetall(Keys(sweep_id).sweep))
        if not raw or b"state" not in raw:
            raise NotFound(f"no sweep {sweep_id!r} in this Redis")
        return Sweep.from_hash(sweep_id, raw)

    def sweep_ids(self) -> list[str]:
        return [_s(x) for x in self.r.zrevrange(Keys.SWEEPS, 0, -1)]

    def set_sweep_state(self, sweep_id: str, state: str, *, allowed: Iterable[str], reason: str = "") -> str:
        k = Keys(sweep_id)
        return str(self._run("set_sweep_state", [k.sweep, k.events], [state, reason, self.now(), *allowed]))

    def update_settings(self, sweep_id: str, **settings: Any) -> None:
        self.r.hset(Keys(sweep_id).sweep, mapping={k: _arg(v) for k, v in settings.items()})

    # --- trials -----------------------------------------------------------------------------

    def create_trial(self, sweep_id: str, number: int, *, params: Mapping[str, Any], encoded: Mapping[str, Any]) -> str:
        """'ok', or why not: 'closed' (sweep not running), 'cap', 'race'."""
        return str(
            self._run(
                "create_trial",
                Keys(sweep_id).transition(number),
                [number, json.dumps(params), json.dumps(encoded), job_id(sweep_id, number, 1), self.now()],
            )
        )

    def trial(self, sweep_id: str, number: int) -> Trial:
        raw = cast(dict[bytes, bytes], self.r.hgetall(Keys(sweep_id).trial(number)))
        if not raw:
            raise NotFound(f"no trial {number} in sweep {sweep_id}")
        return Trial.from_hash(sweep_id, raw)

    def trials(self, sweep_id: str, numbers: Iterable[int] | None = None) -> list[Trial]:
        k = Keys(sweep_id)
        if numbers is None:
            numbers = range(int(self.r.hget(k.sweep, "next") or 0))
        numbers = list(numbers)
        pipe = self.r.pipeline(transaction=False)
        for n in numbers:
            pipe.hgetall(k.trial(n))
        return [Trial.from_hash(sweep_id, raw) for raw in pipe.execute() if raw]

    def queued_numbers(self, sweep_id: str) -> list[int]:
        return sorted(int(x) for x in self.r.smembers(Keys(sweep_id).queued))

    def running_numbers(self, sweep_id: str) -> dict[int, float]:
        """Running trial numbers with their last heartbeat time."""
        pairs = cast(list[tuple[bytes, float]], self.r.zrange(Keys(sweep_id).running, 0, -1, withscores=True))
        return {int(n): float(t) for n, t in pairs}

    def histories(self, sweep_id: str, numbers: Iterable[int]) -> dict[int, list[float]]:
        """Each trial's finite logged values of the sweep's metric, in order."""
        k = Keys(sweep_id)
        numbers = list(numbers)
        pipe = self.r.pipeline(transaction=False)
        for n in numbers:
            pipe.lrange(k.history(n), 0, -1)
        return {n: [float(v) for v in vals] for n, vals in zip(numbers, pipe.execute(), strict=True)}

    def claim(self, sweep_id: str, number: int, *, attempt: int, worker: str, host: str) -> str:
        return str(self._run("claim", Keys(sweep_id).transition(number), [attempt, worker, self.now(), host]))

    def heartbeat(self, sweep_id: str, number: int, *, attempt: int) -> tuple[str, str]:
        state, stop = self._run("heartbeat", Keys(sweep_id).transition(number), [attempt, self.now()])
        return str(state), str(stop)

    def finish(
        self,
        sweep_id: str,
        number: int,
        *,
        attempt: int,
        outcome: str,
        exit_code: int | None = None,
        reason: str = "",
    ) -> str:
        """Record the end of an attempt; returns the state the trial ended in ('queued' if
        requeued, 'stale' if a newer attempt owns the trial)."""
        return str(
            self._run(
                "finish",
                Keys(sweep_id).new_attempt(number),
                [
                    attempt,
                    outcome,
                    "" if exit_code is None else exit_code,
                    reason,
                    self.now(),
                    job_id(sweep_id, number, attempt + 1),
                ],
            )
        )

    def expire(self, sweep_id: str, number: int, *, attempt: int, cutoff: float, max_attempts: int) -> str:
        return str(
            self._run(
                "expire",
                Keys(sweep_id).new_attempt(number),
                [attempt, cutoff, max_attempts, job_id(sweep_id, number, attempt + 1), self.now()],
            )
        )

    def request_stop(self, sweep_id: str, number: int, *, kind: str, reason: str) -> str:
        k = Keys(sweep_id)
        return str(self._run("request_stop", [*k.transition(number), k.stop(number)], [kind, reason, self.now()]))

    def rerun(self, sweep_id: str, number: int, *, reason: str = "rerun") -> str:
        attempt = int(self.r.hget(Keys(sweep_id).trial(number), "attempt") or 0)
        return str(
            self._run(
                "rerun", Keys(sweep_id).new_attempt(number), [job_id(sweep_id, number, attempt + 1), self.now(), reason]
            )
        )

    def log(
        self,
        sweep_id: str,
        number: int,
        *,
        attempt: int,
        step: int,
        record: Mapping[str, Any],
        value: float | None,
        goal: str,
        metric_cap: int,
        stream_cap: int,
    ) -> tuple[str, str]:
        """Append one log() record; returns (trial state, stop request or '')."""
        k = Keys(sweep_id)
        v = "" if value is None or not math.isfinite(value) else repr(float(value))
        state, stop = self._run(
            "log",
            [k.trial(number), k.history(number), k.metrics],
            [attempt, step, json.dumps(record, default=str, allow_nan=True), v, goal, metric_cap, stream_cap, number],
        )
        return state, stop

    def append_output(self, sweep_id: str, number: int, lines: list[str], *, cap: int) -> None:
        """Keep the last `cap` lines of a trial's stdout/stderr."""
        if not lines:
            return
        key = Keys(sweep_id).log(number)
        pipe = self.r.pipeline(transaction=False)
        pipe.rpush(key, *lines)
        pipe.ltrim(key, -cap, -1)
        pipe.execute()

    def output(self, sweep_id: str, number: int, *, tail: int = 1000) -> list[str]:
        return [_s(x) for x in self.r.lrange(Keys(sweep_id).log(number), -tail, -1)]

    def set_trial_fields(self, sweep_id: str, number: int, **fields: Any) -> None:
        self.r.hset(Keys(sweep_id).trial(number), mapping={k: _arg(v) for k, v in fields.items()})

    def trial_fields(self, sweep_id: str, number: int, *names: str) -> list[str | None]:
        """A few fields of a trial in one round trip (None where unset)."""
        raw = cast(list[Any], self.r.hmget(Keys(sweep_id).trial(number), list(names)))
        return [None if v is None else _s(v) for v in raw]

    def wake(self, sweep_id: str, number: int, message: str) -> None:
        """Wake the trial's runner, which blocks on its stop list between heartbeats."""
        self.r.rpush(Keys(sweep_id).stop(number), message)

    def clear_wake(self, sweep_id: str, number: int) -> None:
        self.r.delete(Keys(sweep_id).stop(number))

    # --- streams ----------------------------------------------------------------------------

    def last_event_id(self, sweep_id: str) -> str:
        last = cast(list[Any], self.r.xrevrange(Keys(sweep_id).events, count=1))
        return _s(last[0][0]) if last else "0-0"

    def events_since(self, sweep_id: str, after: str) -> list[tuple[str, dict[str, str]]]:
        """Trial state changes after the stream id `after`, oldest first."""
        raw = cast(list[Any], self.r.xrange(Keys(sweep_id).events, min=f"({after}"))
        return [(_s(i), {_s(k): _s(v) for k, v in f.items()}) for i, f in raw]

    def wait_events(self, sweep_id: str, after: str, *, timeout: float) -> None:
        """Block until an event after `after` arrives, or `timeout` seconds pass."""
        self.r.xread({Keys(sweep_id).events: after}, count=1, block=int(timeout * 1000))

    def join_metrics(self, sweep_id: str, group: str) -> None:
        """Create the consumer group on the metric stream (from its start) unless it exists."""
        try:
            self.r.xgroup_create(Keys(sweep_id).metrics, group, id="0", mkstream=True)
        except redis.ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise

    def read_metrics(
        self,
        sweep_id: str,
        group: str,
        consumer: str,
        *,
        pending: bool,
        block: float,
        count: int = 1000,
    ) -> list[tuple[str, dict[str, str]]]:
        """The next metric records for this consumer (or its unacknowledged ones)."""
        reply = cast(
            list[Any],
            self.r.xreadgroup(
                group,
                consumer,
                {Keys(sweep_id).metrics: "0" if pending else ">"},
                count=count,
                block=None if pending else int(block * 1000),
            ),
        )
        entries = reply[0][1] if reply else []
        return [(_s(i), {_s(k): _s(v) for k, v in f.items()}) for i, f in entries]

    def ack_metrics(self, sweep_id: str, group: str, ids: list[str]) -> None:
        if ids:
            self.r.xack(Keys(sweep_id).metrics, group, *ids)

    # --- leases -----------------------------------------------------------------------------

    def acquire_lease(self, sweep_id: str, role: str, owner: str, *, ttl: float) -> bool:
        """Take or renew the single-holder lease for `role` (planner, pruner)."""
        key = Keys(sweep_id).lease(role)
        ms = int(ttl * 1000)
        if self.r.set(key, owner, nx=True, px=ms):
            return True
        script = self._scripts.get("_renew")
        if script is None:
            script = self._scripts["_renew"] = self.r.register_script(_RENEW)
        return bool(script(keys=[key], args=[owner, ms]))

    def release_lease(self, sweep_id: str, role: str, owner: str) -> None:
        script = self._scripts.get("_release")
        if script is None:
            script = self._scripts["_release"] = self.r.register_script(_RELEASE)
        script(keys=[Keys(sweep_id).lease(role)], args=[owner])

    def lease_holder(self, sweep_id: str, role: str) -> str | None:
        v = self.r.get(Keys(sweep_id).lease(role))
        return None if v is None else _s(v)


# KEYS: lease key. ARGV: owner, ttl ms. Renew only our own lease.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS: lease key. ARGV: owner. Release only our own lease.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _arg(value: Any) -> str | int | float:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float, str)):
        return value
    return json.dumps(value)
