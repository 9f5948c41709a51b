"""The pruner service: reads every logged metric as it arrives and stops losing trials.

Histories are rebuilt from the per-trial history lists at start (the truth), then kept current
from the sweep's metric stream through a consumer group, so a restarted pruner misses nothing.
Each stream entry carries its index in the history, which makes replays idempotent. The rules
themselves are the pure functions of `sweepq.stopping`; this module only reads and writes.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import time
from collections.abc import Callable, Mapping

import redis

from sweepq.model import StopKind
from sweepq.stopping import StoppingRule
from sweepq.store import Store

__all__ = ["Pruner"]

_GROUP = "sweepq-pruner"


class Pruner:
    """Decides on every metric that arrives; `run()` loops until the sweep ends."""

    def __init__(self, store: Store, sweep_id: str, *, lease_ttl: float = 15.0) -> None:
        self.store, self.sweep_id = store, sweep_id
        sweep = store.sweep(sweep_id)
        self.rule: StoppingRule | None = sweep.config.stopping_rule()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.lease_ttl = lease_ttl
        self.histories: dict[str, list[float]] = {}
        self.stopped: set[str] = set()
        self.attempts: dict[str, int] = {}
        self._dirty: set[str] = set()
        self.decisions = 0
        self._started = False

    @property
    def enabled(self) -> bool:
        return self.rule is not None

    def start(self) -> None:
        """Join the consumer group and rebuild every history from Redis."""
        self.store.join_metrics(self.sweep_id, _GROUP)
        created = self.store.sweep(self.sweep_id).created
        trials = self.store.trials(self.sweep_id, range(created))
        self.attempts = {str(t.number): t.attempt for t in trials}
        for number, values in self.store.histories(self.sweep_id, range(created)).items():
            if values:
                self.histories[str(number)] = values
                self._dirty.add(str(number))
        self._read(pending=True)
        self._started = True
        self._decide()

    def step(self, *, block: float = 1.0) -> int:
        """Read what arrived (waiting up to `block` s), decide; returns the number of stops."""
        if not self._started:
            self.start()
        if self._read(pending=False, block=block):
            return self._decide()
        return 0

    def run(self, *, should_exit: Callable[[], bool] = lambda: False) -> None:
        """Prune until the sweep is over, holding the sweep's pruner lease."""
        if not self.enabled:
            return
        try:
            while not should_exit():
                if not self.store.acquire_lease(self.sweep_id, "pruner", self.owner, ttl=self.lease_ttl):
                    time.sleep(1.0)
                    continue
                try:
                    self.step(block=1.0)
                except redis.ConnectionError:
                    time.sleep(0.5)  # Redis restarting; the client backs off and retries
                    continue
                state = self.store.sweep(self.sweep_id)
                if state.state.closed and not state.active:
                    return
        finally:
            with contextlib.suppress(redis.RedisError):
                self.store.release_lease(self.sweep_id, "pruner", self.owner)

    def _read(self, *, pending: bool, block: float = 0.0) -> bool:
        got = False
        while True:
            entries = self.store.read_metrics(self.sweep_id, _GROUP, self.owner, pending=pending, block=block)
            if not entries:
                return got
            for _, fields in entries:
                got |= self._absorb(fields)
            self.store.ack_metrics(self.sweep_id, _GROUP, [entry_id for entry_id, _ in entries])
            if not pending and len(entries) < 1000:
                return got
            block = 0.0

    def _absorb(self, fields: Mapping[str, str]) -> bool:
        value, index = fields.get("v", ""), fields.get("i", "")
        if not value or not index:
            return False
        name, attempt = fields["t"], int(fields.get("a") or 1)
        known = self.attempts.get(name, 0)
        if attempt < known:
            return False  # a superseded attempt's late record
        if attempt > known:  # a new attempt starts its history (and its judgement) afresh
            self.attempts[name] = attempt
            self.histories[name] = []
            if self.rule is not None:
                self.rule.forget(name)
            self.stopped.discard(name)
        hist = self.histories.setdefault(name, [])
        i = int(index) - 1
        while len(hist) <= i:
            hist.append(float("nan"))
        hist[i] = float(value)
        self._dirty.add(name)
        return True

    def _decide(self) -> int:
        if self.rule is None or not self.histories:
            return 0
        running = {str(n) for n in self.store.running_numbers(self.sweep_id)}
        running -= self.stopped
        if not running:
            return 0
        for name in self._dirty:
            self.rule.update(name, _until_gap(self.histories[name]))
        self._dirty.clear()
        stops = self.rule.decide(sorted(running, key=int))
        n = 0
        for stop in stops:
            self.stopped.add(stop.name)
            result = self.store.request_stop(self.sweep_id, int(stop.name), kind=StopKind.PRUNE, reason=stop.reason)
            if result in ("signalled", "pruned"):
                n += 1
        self.decisions += 1
        return n


def _until_gap(hist: list[float]) -> list[float]:
    """A history with a gap (an entry not read yet) is cut at the gap, never guessed."""
    cut = next((i for i, v in enumerate(hist) if v != v), len(hist))
    return hist[:cut]
