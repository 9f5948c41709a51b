"""Who may make a worker run what: sweeps and trials signed by their owner, verified by workers.

Redis is not a trust boundary: anyone who can write to it can rewrite a sweep's config, a queued
trial's parameters or an RQ job. So a worker runs a trial only when it can verify, against the
public keys its operator gave it, two Ed25519 signatures made by the sweep's owner:

- the sweep's, over its id, normalized config (program, command, parameters, everything) and
  working directory, made once when the sweep is created;
- the trial's, over the sweep id, the trial number, its parameters and the sweep's signature,
  made when the planner creates the trial. The attempt is not signed: workers requeue attempts
  and cannot sign (a compromised GPU box holds only public keys).

Anything else is refused with the reason in the trial record, and nothing runs. Function programs
(`program: module:function`, run inside the worker) also need the worker's operator to allow the
module (`SWEEPQ_ALLOW_FUNCTIONS`).

Keys. The owner's secret is `SWEEPQ_SECRET` (at least 32 characters), else the file named by
`SWEEPQ_SECRET_FILE`, else `$SWEEPQ_HOME/signing.key`, generated (mode 0600) the first time a
sweep is created there, so one-machine use needs no setup. The Ed25519 key pair is derived from
the secret. A worker trusts the keys in `SWEEPQ_TRUSTED_KEYS` (`ed25519:<hex>`, comma or space
separated) and in the file `SWEEPQ_TRUSTED_KEYS_FILE` (one per line, `#` comments), plus the
public half of any secret its own process can read (the one-machine case).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import os
import re
import secrets
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweepq.errors import SweepqError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    from sweepq.model import Sweep, Trial

__all__ = [
    "ENV_ALLOW_FUNCTIONS",
    "ENV_SECRET",
    "ENV_SECRET_FILE",
    "ENV_TRUSTED_KEYS",
    "ENV_TRUSTED_KEYS_FILE",
    "PublicKey",
    "Signer",
    "TrustError",
    "Verifier",
    "function_refusal",
    "local_worker_env",
    "new_secret",
    "refusal",
    "shell_warning",
    "sweep_message",
    "trial_message",
]

ENV_SECRET = "SWEEPQ_SECRET"
ENV_SECRET_FILE = "SWEEPQ_SECRET_FILE"
ENV_TRUSTED_KEYS = "SWEEPQ_TRUSTED_KEYS"
ENV_TRUSTED_KEYS_FILE = "SWEEPQ_TRUSTED_KEYS_FILE"
ENV_ALLOW_FUNCTIONS = "SWEEPQ_ALLOW_FUNCTIONS"
KEY_FILE = "signing.key"
PUBLIC_FILE = "signing.pub"
MIN_SECRET = 32
_SCHEME = "ed25519"
_SEED_DOMAIN = b"sweepq ed25519 seed v1\n"
_KEY_RE = re.compile(r"^ed25519:([0-9a-f]{64})$")


class TrustError(SweepqError):
    """A key or secret that cannot be used: a clear message, never a traceback."""


def _canonical(obj: Any) -> bytes:
    """One byte string per JSON value: what is signed is what any reader parses back."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _as_stored(obj: Any) -> Any:
    """The value a reader gets back from Redis (stored as JSON): tuples become lists, and so on."""
    return json.loads(json.dumps(obj))


def sweep_message(sweep_id: str, config: Mapping[str, Any], workdir: str) -> bytes:
    """What a sweep's signature covers: everything that decides which code a trial runs."""
    return _canonical({"sweepq": "sweep/v1", "sweep": sweep_id, "config": _as_stored(config), "workdir": workdir})


def trial_message(sweep_id: str, number: int, params: Mapping[str, Any], sweep_signature: str) -> bytes:
    """What a trial's signature covers: its parameters, bound to its number and its sweep's config."""
    return _canonical(
        {
            "sweepq": "trial/v1",
            "sweep": sweep_id,
            "number": number,
            "params": _as_stored(params),
            "sweep_sig": sweep_signature,
        }
    )


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key as workers are given it: `ed25519:<64 hex digits>`."""

    raw: bytes

    @property
    def text(self) -> str:
        return f"{_SCHEME}:{self.raw.hex()}"

    @property
    def key_id(self) -> str:
        """Short and stable: named in every signature, so a refusal can say which key signed."""
        return hashlib.sha256(self.raw).hexdigest()[:16]

    @classmethod
    def parse(cls, text: str, *, where: str) -> PublicKey:
        match = _KEY_RE.match(text.strip().lower())
        if match is None:
            raise TrustError(f"{where}: {text.strip()[:80]!r} is not a public key (ed25519:<64 hex digits>)")
        return cls(bytes.fromhex(match.group(1)))

    def verifies(self, signature: bytes, message: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature

        try:
            _ed25519(self.raw).verify(signature, message)
        except InvalidSignature:
            return False
        return True


@functools.cache
def _ed25519(raw: bytes) -> Ed25519PublicKey:
    """The key object, built once per key (a worker checks two signatures per trial)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    return Ed25519PublicKey.from_public_bytes(raw)


def new_secret() -> str:
    """A fresh secret: 256 random bits."""
    return secrets.token_urlsafe(32)


class Signer:
    """The owner's private key: signs sweeps and trials. Only the planner's side holds it."""

    def __init__(self, secret: str, *, source: str) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        secret = secret.strip()
        if len(secret) < MIN_SECRET:
            raise TrustError(
                f"{source}: the secret has {len(secret)} characters; it needs at least {MIN_SECRET} "
                "(make one with `sweepq key --generate FILE`)"
            )
        seed = hashlib.sha256(_SEED_DOMAIN + secret.encode()).digest()
        self._key: Ed25519PrivateKey = Ed25519PrivateKey.from_private_bytes(seed)
        self.public = PublicKey(self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
        self.source = source

    def sign(self, message: bytes) -> str:
        sig = base64.b64encode(self._key.sign(message)).decode()
        return f"{_SCHEME}:{self.public.key_id}:{sig}"

    def sign_sweep(self, sweep_id: str, config: Mapping[str, Any], workdir: str) -> str:
        return self.sign(sweep_message(sweep_id, config, workdir))

    def sign_trial(self, sweep_id: str, number: int, params: Mapping[str, Any], sweep_signature: str) -> str:
        return self.sign(trial_message(sweep_id, number, params, sweep_signature))

    @classmethod
    def load(cls, *, create: bool) -> Signer | None:
        """The owner's key from the environment or `$SWEEPQ_HOME`; with `create`, a home key is
        generated when there is none. None when there is no key and `create` is false."""
        secret = os.environ.get(ENV_SECRET)
        if secret:
            return cls(secret, source=ENV_SECRET)
        named = os.environ.get(ENV_SECRET_FILE)
        if named:
            path = Path(named).expanduser()
            try:
                return cls(path.read_text(), source=f"{ENV_SECRET_FILE}={path}")
            except OSError as err:
                raise TrustError(f"{ENV_SECRET_FILE}={path}: cannot read it ({err.strerror or err})") from None
        from sweepq.server import home_dir

        path = home_dir() / KEY_FILE
        with contextlib.suppress(FileNotFoundError):
            return cls(path.read_text(), source=str(path))
        if not create:
            return None
        try:
            signer = cls(_create_secret_file(path), source=str(path))
        except OSError as err:
            raise TrustError(
                f"cannot create the signing key {path} ({err.strerror or err}); set {ENV_SECRET} or {ENV_SECRET_FILE}"
            ) from None
        _write_public(path.with_name(PUBLIC_FILE), signer.public)
        print(
            f"sweepq: generated the signing key {path} (keep it private); workers on other boxes "
            f"need {ENV_TRUSTED_KEYS}={signer.public.text}",
            file=sys.stderr,
        )
        return signer


def _create_secret_file(path: Path) -> str:
    """Write a new secret with mode 0600, atomically: of two processes racing, both end up with
    the one that was linked first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(new_secret() + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text()


def _write_public(path: Path, key: PublicKey) -> None:
    with contextlib.suppress(OSError):
        path.write_text(key.text + "\n")


class Verifier:
    """The public keys a worker trusts, and the check of one signature against them."""

    def __init__(self, keys: Iterable[PublicKey]) -> None:
        self.keys = {k.key_id: k for k in keys}

    @classmethod
    def load(cls) -> Verifier:
        """The keys as configured now. A warm worker asks before every trial: the answer is
        reused while the environment and the key files are unchanged (a rotated or removed key
        takes effect at the next trial), so a trial does not pay for parsing keys."""
        seen = _key_sources()
        cached = _VERIFIER.get(seen)
        if cached is None:
            _VERIFIER.clear()
            cached = _VERIFIER[seen] = cls._read()
        return cached

    @classmethod
    def _read(cls) -> Verifier:
        keys: list[PublicKey] = []
        for token in re.split(r"[\s,]+", os.environ.get(ENV_TRUSTED_KEYS, "")):
            if token:
                keys.append(PublicKey.parse(token, where=ENV_TRUSTED_KEYS))
        named = os.environ.get(ENV_TRUSTED_KEYS_FILE)
        if named:
            path = Path(named).expanduser()
            try:
                text = path.read_text()
            except OSError as err:
                raise TrustError(f"{ENV_TRUSTED_KEYS_FILE}={path}: cannot read it ({err.strerror or err})") from None
            for i, line in enumerate(text.splitlines(), 1):
                line = line.split("#", 1)[0].strip()
                if line:
                    keys.append(PublicKey.parse(line, where=f"{path}:{i}"))
        own = Signer.load(create=False)
        if own is not None:
            keys.append(own.public)
        return cls(keys)

    def check(self, what: str, message: bytes, signature: str | None) -> str | None:
        """None when `signature` is a trusted key's signature of `message`, else why not."""
        if not signature:
            return f"{what} is not signed"
        parts = signature.split(":")
        if len(parts) != 3 or parts[0] != _SCHEME:
            return f"{what} has a malformed signature"
        key = self.keys.get(parts[1])
        if key is None:
            return f"{what} is signed by key {parts[1][:16]!r}, which this worker does not trust"
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except ValueError:
            return f"{what} has a malformed signature"
        if not key.verifies(raw, message):
            return f"{what} does not match its signature (changed after it was signed)"
        return None


_VERIFIER: dict[tuple[object, ...], Verifier] = {}


def _key_sources() -> tuple[object, ...]:
    """What `Verifier.load` reads: the variables, and each file's identity and mtime."""
    from sweepq.server import home_dir

    files = [os.environ.get(ENV_TRUSTED_KEYS_FILE), os.environ.get(ENV_SECRET_FILE), str(home_dir() / KEY_FILE)]
    stats: list[object] = []
    for name in files:
        try:
            st = os.stat(Path(name).expanduser()) if name else None
        except OSError:
            st = None
        stats.append(None if st is None else (st.st_ino, st.st_size, st.st_mtime_ns))
    env = tuple(os.environ.get(k) for k in (ENV_TRUSTED_KEYS, ENV_TRUSTED_KEYS_FILE, ENV_SECRET, ENV_SECRET_FILE))
    return (*env, *files, *stats)


def refusal(sweep: Sweep, trial: Trial, *, in_process: bool = False, verifier: Verifier | None = None) -> str | None:
    """Why this worker must not run the trial, or None. Checked after the claim, on the very
    records the runner then uses, so nothing can change between the check and the run.
    `in_process`: the caller runs its own function object (the notebook agent), not the
    config's program, so no module is imported."""
    try:
        v = verifier or Verifier.load()
    except TrustError as err:
        return str(err)
    if not v.keys:
        return f"this worker trusts no signing key (give it {ENV_TRUSTED_KEYS} or {ENV_TRUSTED_KEYS_FILE})"
    why = _check_sweep(v, sweep)
    if why is None:
        assert sweep.signature is not None
        message = trial_message(sweep.id, trial.number, trial.params, sweep.signature)
        why = v.check(f"trial {trial.number}'s parameters", message, trial.signature)
    if why is None and not in_process:
        why = function_refusal(sweep.config.program or "")
    return why


# Sweep configs this process verified, by (config object, sweep, signature, workdir, verifier):
# each value is the very config object checked, held so that its id cannot be reused. A store
# reads a sweep's config once and never changes it, so a warm horse checks it once, not on
# every trial (its canonical form and signature cost ~0.5 ms for a small config).
_VERIFIED: dict[tuple[int, str, str, str, int], tuple[Mapping[str, Any], Verifier]] = {}


def _check_sweep(v: Verifier, sweep: Sweep) -> str | None:
    key = (id(sweep.raw_config), sweep.id, sweep.signature or "", sweep.settings.workdir, id(v))
    held = _VERIFIED.get(key)
    if held is not None and held[0] is sweep.raw_config and held[1] is v:
        return None
    message = sweep_message(sweep.id, sweep.raw_config, sweep.settings.workdir)
    why = v.check("the sweep config", message, sweep.signature)
    if why is None:
        if len(_VERIFIED) >= 64:
            _VERIFIED.clear()
        _VERIFIED[key] = (sweep.raw_config, v)
    return why


def _allowed_modules() -> list[str]:
    return [m for m in re.split(r"[\s,]+", os.environ.get(ENV_ALLOW_FUNCTIONS, "")) if m]


def function_refusal(program: str) -> str | None:
    """A `module:function` program runs inside the worker: only modules the worker's operator
    allows (`SWEEPQ_ALLOW_FUNCTIONS=pkg.mod,other`; an entry allows its submodules too)."""
    from sweepq.runner import _FUNCTION_RE

    if not _FUNCTION_RE.match(program):
        return None
    module = program.split(":", 1)[0]
    allowed = _allowed_modules()
    if any(module == m or module.startswith(m + ".") for m in allowed):
        return None
    listed = ", ".join(allowed) if allowed else "none"
    return (
        f"program {program!r} runs a function inside the worker, and module {module!r} is not "
        f"in this worker's {ENV_ALLOW_FUNCTIONS} ({listed})"
    )


def local_worker_env(signer: Signer | None, program: str | None) -> dict[str, str]:
    """What the local workers `sweepq plan` starts need: the owner's public key, and the
    sweep's own function module (the owner is their operator). Never the secret."""
    env: dict[str, str] = {}
    if signer is not None:
        trusted = [t for t in re.split(r"[\s,]+", os.environ.get(ENV_TRUSTED_KEYS, "")) if t]
        env[ENV_TRUSTED_KEYS] = ",".join([*trusted, signer.public.text])
    from sweepq.runner import _FUNCTION_RE

    if program and _FUNCTION_RE.match(program):
        env[ENV_ALLOW_FUNCTIONS] = ",".join([*_allowed_modules(), program.split(":", 1)[0]])
    return env


def scrubbed_environ(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without the owner's secret, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in (ENV_SECRET, ENV_SECRET_FILE)}
    env.update(extra)
    return env


_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "csh", "tcsh", "busybox"})
_SHELL_FLAG = re.compile(r"^-[A-Za-z]*c[A-Za-z]*$")


def shell_warning(command: Sequence[str]) -> str | None:
    """A command that starts a shell with a script (`/bin/sh -c '...'`, `env bash -c`): allowed
    (it is signed like any other), but worth a warning at creation."""
    words = list(command)
    while words and (
        words[0] in ("${env}", "env") or words[0].endswith("/env") or re.match(r"^[A-Za-z_]\w*=", words[0])
    ):
        words.pop(0)
    if not words or Path(words[0]).name not in _SHELLS:
        return None
    if not any(_SHELL_FLAG.match(w) for w in words[1:]):
        return None
    return (
        f"command: runs a shell script ({' '.join(words[:2])} ...): every trial runs whatever that "
        "script says and parameter values reach it as shell words; list the program and its "
        "arguments instead unless you need the shell"
    )
