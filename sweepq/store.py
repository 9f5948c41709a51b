"""The Redis state model: every key name, every state change (one Lua script each), records.

Redis is the single source of truth. Each trial state change is one atomic script (see
`sweepq/lua/`), fenced by the trial's attempt number, so a crash of any process at any point
leaves a state from which a restart continues. Every key of a sweep carries the `{sweep_id}` hash
tag so the whole sweep lives in one Redis Cluster slot. Nothing outside this module (and
`jobs`, RQ's side) talks to Redis directly: callers get `Sweep` and `Trial` records, and the
transition scripts return the record they wrote, so nobody reads it back.
"""

from __future__ import annotations

import contextlib
import json
import math
import secrets
import string
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, cast

import redis

from sweepq.errors import NotFound
from sweepq.model import Settings, StopKind, Sweep, SweepState, Trial, TrialState

if TYPE_CHECKING:
    from sweepq.config import SweepConfig
    from sweepq.trust import Signer

__all__ = ["Created", "Keys", "LogRecord", "RunClaim", "Store", "Transition"]

# Transition scripts share `_prelude.lua` and its seven KEYS.
_TRANSITIONS = frozenset({"claim", "create_trial", "expire", "finish", "heartbeat", "request_stop", "rerun"})
_LOG_BATCH = 500  # records per call of log.lua: one call holds the server for about a millisecond
_row_json = json.JSONEncoder(default=str).encode  # json.dumps(row, default=str), its encoder made once
Arg = str | int | float


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
    def config(self) -> str:
        """The normalized config, apart from the sweep hash: written once, read once per process."""
        return f"{self.prefix}:config"

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

    @property
    def agents(self) -> str:
        """`sweepq agent`s waiting for a trial (zset by last announcement)."""
        return f"{self.prefix}:agents"

    @property
    def epoch(self) -> str:
        """The server identity (run_id) claims were last made on, and since when: see claim.lua."""
        return f"{self.prefix}:epoch"

    def lease(self, role: str) -> str:
        return f"{self.prefix}:lease:{role}"

    def trial(self, number: int) -> str:
        return f"{self.prefix}:trial:{number}"

    def history(self, number: int) -> str:
        return f"{self.prefix}:hist:{number}"

    def log(self, number: int) -> str:
        return f"{self.prefix}:log:{number}"

    def wake(self, number: int, attempt: int | None = None) -> str:
        """The list an attempt's runner blocks on between heartbeats. Per attempt, so an old
        attempt's "done" never wakes (and ends) the live attempt's watch."""
        base = f"{self.prefix}:wake:{number}"
        return base if attempt is None else f"{base}:{attempt}"

    def transition(self, number: int) -> list[str]:
        """The seven KEYS every transition script takes, in `_prelude.lua`'s order."""
        return [
            self.sweep,
            self.trial(number),
            self.queued,
            self.running,
            self.events,
            self.history(number),
            self.wake(number),
        ]


@dataclass(frozen=True)
class LogRecord:
    """One log() row: its step, the whole row, and the sweep metric's value in it (if any)."""

    step: int
    data: Mapping[str, Any]
    value: float | None


@dataclass(frozen=True)
class Transition:
    """A transition script's answer and the trial record as the script left it."""

    status: str
    trial: Trial | None


@dataclass(frozen=True)
class Created:
    """`create_trial_at`'s answer: 'ok' or why not, and for 'ok' where its 'queued' event went:
    the events stream's last id before it ("" when the stream was empty) and its own id."""

    status: str
    before: str | None = None
    event: str | None = None


@dataclass(frozen=True)
class RunClaim(Transition):
    """A runner's claim (`Store.claim_to_run`): the sweep as of the claim, and the run_id of the
    server that took it (a later change means acknowledged writes may have been lost)."""

    sweep: Sweep | None = None
    server_id: str = ""


def new_sweep_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


@cache
def _script_source(name: str) -> str:
    lua = resources.files("sweepq") / "lua"
    body = (lua / f"{name}.lua").read_text()
    if name not in _TRANSITIONS:
        return body
    return (lua / "_prelude.lua").read_text() + "\n" + body


def _s(value: bytes | str | int | float) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _arg(value: Any) -> Arg:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float, str)):
        return value
    return json.dumps(value)


class Store:
    """Typed access to one Redis: reads return records, writes are the Lua transitions."""

    def __init__(self, r: redis.Redis, *, now: Callable[[], float] = time.time, signer: Signer | None = None) -> None:
        self.r = r
        self.now = now
        self._scripts: dict[str, Any] = {}
        self._configs: dict[str, dict[str, Any]] = {}  # a sweep's config never changes
        self._signer = signer  # the owner's key, loaded when this store first creates something
        self._sweep_sigs: dict[str, str] = {}  # nor does its signature
        self._sync_mode: tuple[bool, int] | None = None

    @property
    def signer(self) -> Signer:
        """The key that signs what this store creates (`sweepq.trust`): given, or the owner's
        from the environment or `$SWEEPQ_HOME` (generated there the first time)."""
        if self._signer is None:
            from sweepq.trust import Signer

            self._signer = Signer.load(create=True)
            assert self._signer is not None
        return self._signer

    def _script(self, name: str) -> Any:
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.r.register_script(_script_source(name))
        return script

    def _pipelined(self, calls: Sequence[tuple[str, list[str], list[Arg]]]) -> list[Any]:
        """Several script calls in one round trip. redis-py's own pipeline would first ask
        SCRIPT EXISTS (a second round trip every time); these scripts are loaded once per Store,
        and a server that lost them (a restart) gets the failed calls again one by one."""
        pipe = self.r.pipeline(transaction=False)
        for name, keys, args in calls:
            pipe.evalsha(self._script(name).sha, len(keys), *keys, *args)
        replies = pipe.execute(raise_on_error=False)
        for i, reply in enumerate(replies):
            if isinstance(reply, redis.exceptions.NoScriptError):
                name, keys, args = calls[i]
                replies[i] = self._script(name)(keys=keys, args=args)
            elif isinstance(reply, Exception):
                raise reply
        return list(replies)

    def _call(self, name: str, keys: Sequence[str], args: Iterable[Any]) -> Any:
        return self._script(name)(keys=list(keys), args=[_arg(a) for a in args])

    def _run(self, name: str, keys: Sequence[str], args: Iterable[Any]) -> str:
        return _s(self._call(name, keys, args))

    def _transition(self, sweep_id: str, number: int, name: str, args: Iterable[Any]) -> Transition:
        return self._answer(sweep_id, cast(list[bytes], self._call(name, Keys(sweep_id).transition(number), args)))

    @staticmethod
    def _answer(sweep_id: str, reply: list[bytes]) -> Transition:
        status, flat = _s(reply[0]), reply[1:]
        if not flat:
            return Transition(status, None)
        raw = {_s(flat[i]): _s(flat[i + 1]) for i in range(0, len(flat), 2)}
        return Transition(status, Trial.from_hash(sweep_id, raw))

    # --- sweeps -----------------------------------------------------------------------------

    def create_sweep(
        self,
        config: SweepConfig,
        settings: Settings | None = None,
        *,
        cap: int | None = None,
        sweep_id: str | None = None,
    ) -> str:
        """Write a new sweep from a validated config."""
        settings = settings or Settings()
        sid = sweep_id or new_sweep_id()
        keys = Keys(sid)
        fields: dict[str, Arg] = {
            "id": sid,
            "state": SweepState.RUNNING.value,
            "created_at": self.now(),
            "next": 0,
            **settings.encode(),
        }
        if cap is not None:
            fields["cap"] = cap
        raw = config.to_dict()
        text = json.dumps(raw)
        fields["sig"] = self.signer.sign_sweep(sid, json.loads(text), settings.workdir)
        if not self.r.set(keys.config, text, nx=True):
            raise ValueError(f"sweep {sid} exists")
        pipe = self.r.pipeline()
        pipe.hset(keys.sweep, mapping=cast(Mapping[Any, Any], fields))
        pipe.zadd(Keys.SWEEPS, {sid: float(fields["created_at"])})
        pipe.execute()
        self._configs[sid] = raw
        self._sweep_sigs[sid] = str(fields["sig"])
        return sid

    def _raw_config(self, sweep_id: str) -> dict[str, Any] | None:
        raw = self._configs.get(sweep_id)
        if raw is None:
            text = self.r.get(Keys(sweep_id).config)
            if text is None:
                return None
            raw = self._configs[sweep_id] = json.loads(_s(cast(bytes, text)))
        return raw

    def sweep(self, sweep_id: str) -> Sweep:
        """The sweep record: one HGETALL (the config is read once per process)."""
        sweep = self._sweep_of(sweep_id, cast(dict[bytes, bytes], self.r.hgetall(Keys(sweep_id).sweep)))
        if sweep is None:
            raise NotFound(f"no sweep {sweep_id!r} in this Redis")
        return sweep

    def _sweep_of(self, sweep_id: str, fields: Mapping[bytes, bytes] | Sequence[bytes]) -> Sweep | None:
        """The record from its hash as read (a mapping, or a script's flat list), or None."""
        if not isinstance(fields, Mapping):
            fields = dict(zip(fields[::2], fields[1::2], strict=True))
        config = self._raw_config(sweep_id) if b"state" in fields else None
        if config is None:
            return None
        return Sweep.from_fields(sweep_id, {_s(k): _s(v) for k, v in fields.items()}, config)

    def sweep_ids(self) -> list[str]:
        """Every sweep, newest first; sweeps whose retention expired are dropped from the list."""
        ids = [_s(x) for x in cast(list[bytes], self.r.zrevrange(Keys.SWEEPS, 0, -1))]
        pipe = self.r.pipeline(transaction=False)
        for sid in ids:
            pipe.exists(Keys(sid).sweep)
        alive = pipe.execute() if ids else []
        gone = [sid for sid, ok in zip(ids, alive, strict=True) if not ok]
        if gone:
            with contextlib.suppress(redis.exceptions.NoPermissionError):  # a read-only viewer
                self.r.zrem(Keys.SWEEPS, *gone)
        return [sid for sid, ok in zip(ids, alive, strict=True) if ok]

    def set_sweep_state(
        self,
        sweep_id: str,
        state: SweepState,
        *,
        allowed: Iterable[SweepState],
        reason: str = "",
        waive_failures: bool = False,
        by_user: bool = False,
    ) -> str:
        """'ok', or the current state when the move is not allowed from it. `by_user` records
        that a person (not sweepq itself) made the move."""
        k = Keys(sweep_id)
        who = "user" if by_user else "sweepq"
        return self._run(
            "set_sweep_state",
            [k.sweep, k.events],
            [state, reason, self.now(), int(waive_failures), who, *allowed],
        )

    def sweep_keys(self, sweep_id: str) -> list[str]:
        """Every key of the sweep (one SCAN over its hash-tagged prefix) and its RQ jobs'."""
        keys: list[str] = []
        for pattern in (f"{Keys(sweep_id).prefix}:*", f"rq:job:sweepq-{sweep_id}-*"):
            keys += [_s(k) for k in self.r.scan_iter(match=pattern, count=1000)]
        return keys

    def delete_sweep(self, sweep_id: str) -> int:
        """Remove a sweep and everything it wrote; returns the number of keys deleted. The
        caller makes sure nothing of it still runs (`control.delete`)."""
        keys = self.sweep_keys(sweep_id)
        pipe = self.r.pipeline(transaction=False)
        for i in range(0, len(keys), 500):
            pipe.unlink(*keys[i : i + 500])
        pipe.zrem(Keys.SWEEPS, sweep_id)
        pipe.execute()
        self._configs.pop(sweep_id, None)
        return len(keys)

    def expire_sweep(self, sweep_id: str, seconds: int) -> None:
        """Let an ended sweep's keys expire after `seconds` (the retention setting); its entry in
        the list of sweeps goes when `sweep_ids` next finds it gone."""
        pipe = self.r.pipeline(transaction=False)
        for key in self.sweep_keys(sweep_id):
            pipe.expire(key, seconds)
        pipe.execute()

    def set_cap(self, sweep_id: str, cap: int) -> None:
        self.r.hset(Keys(sweep_id).sweep, "cap", cap)

    # --- trials -----------------------------------------------------------------------------

    def create_trial(self, sweep_id: str, number: int, *, params: Mapping[str, Any], encoded: Mapping[str, Any]) -> str:
        """'ok', or why not: 'closed' (sweep not running), 'cap', 'race'. The trial is signed
        (number, parameters, the sweep's signature) so a worker can tell it from a forgery."""
        return self.create_trial_at(sweep_id, number, params=params, encoded=encoded).status

    def create_trial_at(
        self, sweep_id: str, number: int, *, params: Mapping[str, Any], encoded: Mapping[str, Any]
    ) -> Created:
        """`create_trial`, with where its event went in the events stream."""
        text = json.dumps(params)
        sig = self.signer.sign_trial(sweep_id, number, json.loads(text), self._sweep_signature(sweep_id))
        reply = self._call(
            "create_trial",
            Keys(sweep_id).transition(number),
            [number, text, json.dumps(encoded), self.now(), sig],
        )
        if isinstance(reply, list):
            return Created(_s(reply[0]), _s(reply[1]), _s(reply[2]))
        return Created(_s(reply))

    def _sweep_signature(self, sweep_id: str) -> str:
        sig = self._sweep_sigs.get(sweep_id)
        if sig is None:
            sig = self._sweep_sigs[sweep_id] = _s(cast(bytes, self.r.hget(Keys(sweep_id).sweep, "sig") or b""))
        return sig

    def trial(self, sweep_id: str, number: int) -> Trial:
        raw = cast(dict[bytes, bytes], self.r.hgetall(Keys(sweep_id).trial(number)))
        if not raw:
            raise NotFound(f"no trial {number} in sweep {sweep_id}")
        return Trial.from_hash(sweep_id, raw)

    def trials(self, sweep_id: str, numbers: Iterable[int] | None = None) -> list[Trial]:
        """Trial records in one pipelined round trip (all of them when `numbers` is None)."""
        k = Keys(sweep_id)
        if numbers is None:
            numbers = range(int(cast(bytes, self.r.hget(k.sweep, "next")) or 0))
        numbers = list(numbers)
        pipe = self.r.pipeline(transaction=False)
        for n in numbers:
            pipe.hgetall(k.trial(n))
        return [Trial.from_hash(sweep_id, raw) for raw in pipe.execute() if raw]

    def queued_numbers(self, sweep_id: str) -> list[int]:
        return sorted(int(x) for x in cast(set[bytes], self.r.smembers(Keys(sweep_id).queued)))

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

    def claim(
        self,
        sweep_id: str,
        number: int,
        *,
        attempt: int,
        worker: str,
        host: str,
        token: str = "",
        server_id: str = "",
        settle: float = 0.0,
    ) -> Transition:
        """'ok' with the running record, or why the attempt must not run ('paused': leave it
        queued; 'settling': the server just restarted or failed over, leave it queued for now;
        'cancelled', 'stale', 'missing', or the state it is in). `token` fences this claim's
        heartbeats and finish; `server_id` (see `server_id()`) and `settle` hold claims back
        after the server changed identity, so runners whose claims it lost re-assert them first."""
        reply = self._claim(sweep_id, number, [attempt, worker, self.now(), host, token, server_id, settle])
        return self._answer(sweep_id, cast(list[bytes], reply))

    def _claim(self, sweep_id: str, number: int, args: list[Arg]) -> Any:
        k = Keys(sweep_id)
        return self._call("claim", [*k.transition(number), k.epoch], args)

    def claim_to_run(
        self, sweep_id: str, number: int, *, attempt: int, worker: str, host: str, token: str, settle: float
    ) -> RunClaim:
        """`claim` as a runner makes it, with what the runner needs before it starts the program
        in the same round trip: the server's run_id (read by the script: no INFO first) and the
        sweep record (no HGETALL after)."""
        args: list[Arg] = [attempt, worker, self.now(), host, token, "*", settle, 1]
        answer, run_id, flat = cast(list[Any], self._claim(sweep_id, number, args))
        claim = self._answer(sweep_id, cast(list[bytes], answer))
        sweep = self._sweep_of(sweep_id, flat) if claim.status == "ok" else None
        if claim.status == "ok" and sweep is None:
            raise NotFound(f"no sweep {sweep_id!r} in this Redis")
        return RunClaim(claim.status, claim.trial, sweep, _s(run_id))

    def server_id(self) -> str:
        """The server's run_id: it changes when the server restarts or a replica takes over,
        which is when acknowledged writes may have been lost."""
        info = self.r.info("server")
        return str(info.get("run_id", ""))

    def sync(self, *, timeout_ms: int = 1000) -> tuple[int, int]:
        """Wait until what this client wrote is durable: fsynced to the local AOF (WAITAOF, on
        Redis >= 7.2 and Valkey, when appendonly is on) and received by the connected replicas
        (WAIT), so a crash or a failover cannot lose it. Returns (local fsyncs, replicas) that
        acknowledged; (0, 0) where the server offers neither (Redis 7.0 without replicas)."""
        mode = self._sync_mode
        if mode is None:
            mode = self._sync_mode = self._probe_sync()
        local = replicas = 0
        if mode[0]:
            acks = self.r.waitaof(1, 0, timeout_ms)
            local = int(acks[0])
        if mode[1]:
            replicas = int(self.r.wait(mode[1], timeout_ms))
        return local, replicas

    def _probe_sync(self) -> tuple[bool, int]:
        """(WAITAOF usable, replicas to WAIT for), asked once per Store."""
        try:
            waitaof = True
            self.r.waitaof(1, 0, 1)
        except redis.ResponseError:
            waitaof = False  # unknown command (Redis < 7.2), or appendonly off
        replicas = 0
        with contextlib.suppress(redis.RedisError):
            replicas = int(self.r.info("replication").get("connected_slaves", 0))
        return waitaof, replicas

    def heartbeat(
        self, sweep_id: str, number: int, *, attempt: int, token: str = "", worker: str = "", host: str = ""
    ) -> tuple[TrialState | str, StopKind | None]:
        """(state, stop request): the state is 'stale' or 'missing' for a superseded attempt (or
        a claim another worker's claim replaced); with `token`, a claim Redis lost is re-asserted."""
        reply = cast(
            list[bytes],
            self._call("heartbeat", Keys(sweep_id).transition(number), [attempt, self.now(), token, worker, host]),
        )
        state, stop = _s(reply[0]), _s(reply[1])
        return _state(state), StopKind(stop) if stop else None

    def finish(
        self,
        sweep_id: str,
        number: int,
        *,
        attempt: int,
        outcome: str,
        exit_code: int | None = None,
        reason: str = "",
        token: str = "",
        checks: str = "",
        summary: str = "",
    ) -> Transition:
        """Record the end of an attempt: the state it ended in ('queued' when requeued as a new
        attempt, whose record comes back for enqueueing; 'stale' when a newer attempt, or another
        claim of this attempt, owns it). `checks` are the runner's (see finish.lua): 'preempt',
        or 'metric', which may answer 'unlogged' and change nothing. `summary` (JSON text, the
        program's last word through its channel) is written with it, by the attempt that owns
        the trial only."""
        code = "" if exit_code is None else exit_code
        args = [attempt, outcome, code, reason, self.now(), token, checks, summary]
        return self._transition(sweep_id, number, "finish", args)

    def expire(self, sweep_id: str, number: int, *, attempt: int, cutoff: float, max_attempts: int) -> Transition:
        """The reaper's transition for an attempt whose heartbeat is older than `cutoff`."""
        return self._transition(sweep_id, number, "expire", [attempt, cutoff, max_attempts, self.now()])

    def request_stop(self, sweep_id: str, number: int, *, kind: StopKind, reason: str) -> str:
        """'signalled' (a running attempt will stop), 'already', 'pruned'/'cancelled' (a queued
        trial ended at once), or the state it is in."""
        return self._transition(sweep_id, number, "request_stop", [kind, reason, self.now()]).status

    def rerun(self, sweep_id: str, number: int, *, reason: str = "rerun") -> Transition:
        return self._transition(sweep_id, number, "rerun", [self.now(), reason])

    def log(
        self,
        sweep: Sweep,
        number: int,
        *,
        attempt: int,
        records: Sequence[LogRecord],
        source: str = "sdk",
        output: Sequence[str] = (),
    ) -> tuple[TrialState | str, StopKind | None]:
        """Append log() records (and output lines) of an attempt in one round trip (one script
        call per `_LOG_BATCH` records); returns the trial's state and any stop request after
        the last one."""
        k = Keys(sweep.id)
        goal = sweep.metric.goal if sweep.metric else "minimize"
        calls: list[tuple[str, list[str], list[Arg]]] = []
        if output:
            calls.append(("output", [k.trial(number), k.log(number)], [attempt, sweep.settings.log_cap, *output]))
        head: list[Arg] = [attempt, goal, sweep.settings.metric_cap, sweep.settings.stream_cap, number, source]
        for start in range(0, len(records), _LOG_BATCH):
            args = list(head)
            for rec in records[start : start + _LOG_BATCH]:
                v = "" if rec.value is None or not math.isfinite(rec.value) else repr(float(rec.value))
                args += [rec.step, _row_json(rec.data), v]
            calls.append(("log", [k.trial(number), k.history(number), k.metrics], args))
        replies = self._pipelined(calls)
        if not records:
            return TrialState.RUNNING, None
        state, stop = (_s(x) for x in replies[-1])
        return _state(state), StopKind(stop) if stop else None

    def output(self, sweep_id: str, number: int, *, tail: int = 1000) -> list[str]:
        return [_s(x) for x in cast(list[bytes], self.r.lrange(Keys(sweep_id).log(number), -tail, -1))]

    def annotate(self, sweep_id: str, number: int, *, attempt: int, **fields: Arg | Mapping[str, Any]) -> bool:
        """Set a few of the running attempt's own fields (`sdk`, `preempting`, `summary`);
        fenced: a superseded attempt writes nothing. True if written."""
        flat: list[Arg] = []
        for name, value in fields.items():
            flat += [name, _arg(value)]
        return self._run("annotate", [Keys(sweep_id).trial(number)], [attempt, *flat]) == "ok"

    def wait_wake(self, sweep_id: str, number: int, *, attempt: int, timeout: float) -> str | None:
        """Block up to `timeout` seconds on the attempt's wake list: a stop kind, 'done' or None."""
        woke = cast(tuple[bytes, bytes] | None, self.r.blpop([Keys(sweep_id).wake(number, attempt)], timeout=timeout))
        return None if woke is None else _s(woke[1])

    def wake(self, sweep_id: str, number: int, *, attempt: int, message: str) -> None:
        """Wake the attempt's runner, which blocks on its wake list between heartbeats."""
        key = Keys(sweep_id).wake(number, attempt)
        pipe = self.r.pipeline(transaction=False)
        pipe.rpush(key, message)
        pipe.expire(key, 3600)
        pipe.execute()

    # --- streams ----------------------------------------------------------------------------

    def last_event_id(self, sweep_id: str) -> str:
        last = cast(list[Any], self.r.xrevrange(Keys(sweep_id).events, count=1))
        return _s(last[0][0]) if last else "0-0"

    def events_since(self, sweep_id: str, after: str) -> list[tuple[str, dict[str, str]]]:
        """Trial state changes after the stream id `after`, oldest first."""
        raw = cast(list[Any], self.r.xrange(Keys(sweep_id).events, min=f"({after}"))
        return [(_s(i), {_s(k): _s(v) for k, v in f.items()}) for i, f in raw]

    def wait_events(
        self, sweep_id: str, after: str, *, timeout: float
    ) -> tuple[list[tuple[str, dict[str, str]]], Sweep | None]:
        """Block until events after `after` arrive, or `timeout` seconds pass; returns them
        (oldest first, as `events_since`), so the caller need not read them again, and the
        sweep record as it is once they arrived (one round trip: Redis runs the HGETALL queued
        behind the blocking XREAD when it returns). The record is None if the sweep is gone."""
        k = Keys(sweep_id)
        pipe = self.r.pipeline(transaction=False)
        pipe.xread({k.events: after}, block=int(timeout * 1000))
        pipe.hgetall(k.sweep)
        raw, fields = cast(tuple[list[Any], dict[bytes, bytes]], tuple(pipe.execute()))
        entries = raw[0][1] if raw else []
        events = [(_s(i), {_s(key): _s(v) for key, v in f.items()}) for i, f in entries]
        return events, self._sweep_of(sweep_id, fields)

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

    def metrics_after(self, sweep_id: str, cursor: str, *, count: int) -> list[tuple[str, dict[str, str]]]:
        """Metric records after the stream id `cursor` ('-': from the start), oldest first: what
        a viewer reads without joining the pruner's consumer group."""
        start = cursor if cursor == "-" else f"({cursor}"
        raw = cast(list[Any], self.r.xrange(Keys(sweep_id).metrics, min=start, max="+", count=count))
        return [(_s(i), {_s(k): _s(v) for k, v in f.items()}) for i, f in raw]

    # --- agents -----------------------------------------------------------------------------

    def announce_agent(self, sweep_id: str, agent: str, *, waiting: bool) -> None:
        """An agent without the planner lease says it waits for a trial (or no longer does)."""
        key = Keys(sweep_id).agents
        if waiting:
            self.r.zadd(key, {agent: self.now()})
        else:
            self.r.zrem(key, agent)

    def waiting_agents(self, sweep_id: str, *, ttl: float) -> int:
        """Agents that said they wait within the last `ttl` seconds."""
        key = Keys(sweep_id).agents
        pipe = self.r.pipeline(transaction=False)
        pipe.zremrangebyscore(key, 0, self.now() - ttl)
        pipe.zcard(key)
        return int(cast(list[int], pipe.execute())[1])

    def ack_metrics(self, sweep_id: str, group: str, ids: list[str]) -> None:
        if ids:
            self.r.xack(Keys(sweep_id).metrics, group, *ids)

    # --- leases -----------------------------------------------------------------------------

    def acquire_lease(self, sweep_id: str, role: str, owner: str, *, ttl: float) -> bool:
        """Take or renew the single-holder lease for `role` (planner, pruner)."""
        return self._run("acquire_lease", [Keys(sweep_id).lease(role)], [owner, int(ttl * 1000)]) == "1"

    def release_lease(self, sweep_id: str, role: str, owner: str) -> None:
        self._run("release_lease", [Keys(sweep_id).lease(role)], [owner])

    def lease_holder(self, sweep_id: str, role: str) -> str | None:
        v = self.r.get(Keys(sweep_id).lease(role))
        return None if v is None else _s(cast(bytes, v))


def _state(value: str) -> TrialState | str:
    """A trial state, or the script's word for "not yours" ('stale', 'missing')."""
    try:
        return TrialState(value)
    except ValueError:
        return value
