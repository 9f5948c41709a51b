"""An attacker with plain Redis write access: what they try, and that nothing of theirs runs.

Real parts only: a Redis-compatible server, real `rq worker -w sweepq.worker.Worker` processes
(run with --burst to the end of the queue), the real `sweepq` CLI. The attacker is a plain redis
client writing keys; the owner is this test process, signing with the session key the conftest
gives every process (`SWEEPQ_SECRET_FILE`), unless a test sets up its own keys.
"""

from __future__ import annotations

import json
import os
import pickle
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from sweepq import config as cfgmod
from sweepq import jobs, trust
from sweepq.model import Settings, TrialState
from sweepq.planner import Planner
from sweepq.store import Keys, Store
from tests.helpers import PY, base_env, cli, program, write_config

WRITE_ARGV = """\
import os, sys
from pathlib import Path
Path(os.environ["SWEEPQ_TEST_OUT"], "ran-" + os.environ["SWEEPQ_TRIAL"]).write_text(" ".join(sys.argv[1:]))
"""


def _burst(url: str, *, cwd: Path, env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """A hardened worker that works the queue empty, then exits."""
    argv = [PY, "-m", "rq.cli", "worker", "--url", url, "-w", "sweepq.worker.Worker", "--burst", "sweepq"]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def _owner_sweep(store: Store, tmp_path: Path, *, trials: int = 1, prog: str | None = None, **extra: Any) -> str:
    """A sweep made by its owner, with `trials` trials created and enqueued (no planner)."""
    if prog is None:
        (tmp_path / "prog.py").write_text(WRITE_ARGV)
        prog = str(tmp_path / "prog.py")
    cfg = cfgmod.load(
        {"program": prog, "method": "grid", "parameters": {"x": {"values": list(range(trials))}}, **extra}
    )
    sid = store.create_sweep(cfg, Settings(workdir=str(tmp_path)), cap=trials)
    sweep = store.sweep(sid)
    for n in range(trials):
        assert store.create_trial(sid, n, params={"x": n}, encoded={}) == "ok"
        jobs.enqueue_trial(store.r, sweep, store.trial(sid, n))
    return sid


@pytest.fixture()
def out(tmp_path: Path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


def _env(out: Path, **extra: str) -> dict[str, str]:
    return base_env(SWEEPQ_TEST_OUT=str(out), **extra)


def _keyless_env(out: Path, home: Path, **extra: str) -> dict[str, str]:
    """A box that holds no secret and trusts only what `extra` says."""
    env = _env(out, SWEEPQ_HOME=str(home), **extra)
    for name in (trust.ENV_SECRET, trust.ENV_SECRET_FILE, trust.ENV_TRUSTED_KEYS, trust.ENV_TRUSTED_KEYS_FILE):
        if name not in extra:
            env.pop(name, None)
    return env


def _refused(store: Store, sid: str, number: int = 0) -> str:
    trial = store.trial(sid, number)
    assert trial.state == TrialState.FAILED, (trial.state, trial.reason)
    assert (trial.reason or "").startswith("refused: "), trial.reason
    return trial.reason or ""


# --- the attacks --------------------------------------------------------------------------------


def test_a_rewritten_config_is_refused_and_its_shell_command_never_runs(
    r: redis.Redis, redis_url: str, tmp_path: Path, out: Path
) -> None:
    store = Store(r)
    sid = _owner_sweep(store, tmp_path, trials=2)
    pwned = tmp_path / "pwned"
    forged = dict(store.sweep(sid).raw_config)
    forged["command"] = ["/bin/sh", "-c", f"touch {pwned}"]
    r.set(Keys(sid).config, json.dumps(forged))  # the attacker: one SET

    done = _burst(redis_url, cwd=tmp_path, env=_env(out))
    assert not pwned.exists(), "the attacker's command ran"
    assert list(out.iterdir()) == []
    for n in (0, 1):
        assert "the sweep config does not match its signature" in _refused(Store(r), sid, n), done.stderr


def test_forged_trial_parameters_are_refused(r: redis.Redis, redis_url: str, tmp_path: Path, out: Path) -> None:
    store = Store(r)
    sid = _owner_sweep(store, tmp_path, trials=2)
    r.hset(Keys(sid).trial(1), "params", json.dumps({"x": "; touch /tmp/x"}))  # the attacker

    _burst(redis_url, cwd=tmp_path, env=_env(out))
    assert (out / "ran-0").read_text() == "--x=0"  # the untouched trial ran with its own value
    assert not (out / "ran-1").exists()
    assert "trial 1's parameters does not match its signature" in _refused(store, sid, 1)


def test_a_signed_trial_moved_to_another_number_or_sweep_is_refused(
    r: redis.Redis, redis_url: str, tmp_path: Path, out: Path
) -> None:
    """Signatures are bound to their place: copying trial 0's (params, sig) onto trial 1, or a
    whole signed config onto another sweep, does not verify."""
    store = Store(r)
    sid = _owner_sweep(store, tmp_path, trials=2)
    t0 = r.hgetall(Keys(sid).trial(0))
    r.hset(Keys(sid).trial(1), mapping={"params": t0[b"params"], "sig": t0[b"sig"]})
    (tmp_path / "other").mkdir()
    other = _owner_sweep(store, tmp_path / "other")
    r.set(Keys(other).config, r.get(Keys(sid).config) or b"")
    r.hset(Keys(other).sweep, "sig", r.hget(Keys(sid).sweep, "sig") or b"")

    _burst(redis_url, cwd=tmp_path, env=_env(out))
    assert "trial 1's parameters" in _refused(store, sid, 1)
    assert "the sweep config does not match" in _refused(store, other, 0)
    assert [p.name for p in out.iterdir()] == ["ran-0"]


def test_unsigned_or_stranger_signed_sweeps_created_in_redis_are_refused(
    r: redis.Redis, redis_url: str, tmp_path: Path, out: Path
) -> None:
    """The attacker writes whole sweeps: one with no signatures at all, one signed with a key of
    their own. Both are refused; nothing runs."""
    stranger = Store(r, signer=trust.Signer(trust.new_secret(), source="the attacker"))
    unsigned = _owner_sweep(stranger, tmp_path)
    r.hdel(Keys(unsigned).sweep, "sig")
    r.hdel(Keys(unsigned).trial(0), "sig")
    signed_by_stranger = _owner_sweep(stranger, tmp_path)

    _burst(redis_url, cwd=tmp_path, env=_env(out))
    assert list(out.iterdir()) == []
    assert "the sweep config is not signed" in _refused(stranger, unsigned)
    why = _refused(stranger, signed_by_stranger)
    assert f"signed by key '{stranger.signer.public.key_id}', which this worker does not trust" in why


def test_a_worker_that_trusts_another_key_refuses_everything(
    r: redis.Redis, redis_url: str, tmp_path: Path, out: Path
) -> None:
    store = Store(r)
    sid = _owner_sweep(store, tmp_path, trials=3)
    other = trust.Signer(trust.new_secret(), source="another owner").public.text
    env = _keyless_env(out, tmp_path / "gpu-home", SWEEPQ_TRUSTED_KEYS=other)

    _burst(redis_url, cwd=tmp_path, env=env)
    assert list(out.iterdir()) == []
    for n in range(3):
        assert "which this worker does not trust" in _refused(store, sid, n)


def test_a_worker_with_no_trusted_key_does_not_start(r: redis.Redis, redis_url: str, tmp_path: Path, out: Path) -> None:
    store = Store(r)
    sid = _owner_sweep(store, tmp_path)
    done = _burst(redis_url, cwd=tmp_path, env=_keyless_env(out, tmp_path / "gpu-home"))
    assert done.returncode != 0
    assert "no trusted signing key" in done.stderr
    assert store.trial(sid, 0).state == TrialState.QUEUED  # untouched: another worker can run it
    assert list(out.iterdir()) == []


def test_a_bad_trusted_key_fails_the_worker_start_with_its_message(redis_url: str, tmp_path: Path, out: Path) -> None:
    env = _keyless_env(out, tmp_path / "gpu-home", SWEEPQ_TRUSTED_KEYS="ed25519:nothex")
    done = _burst(redis_url, cwd=tmp_path, env=env)
    assert done.returncode != 0
    assert "SWEEPQ_TRUSTED_KEYS: 'ed25519:nothex' is not a public key" in done.stderr


class _Touch:
    """A pickle that runs `touch path` when loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.path}",))


def test_a_pickle_planted_in_a_job_is_never_unpickled_by_the_planner_or_stop(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    store = Store(r)
    sid = _owner_sweep(store, tmp_path)
    job_id = store.trial(sid, 0).job_id
    by_planner, by_stop = tmp_path / "by-planner", tmp_path / "by-stop"

    r.hset(f"rq:job:{job_id}", "meta", pickle.dumps(_Touch(by_planner)))
    r.srem(Keys(sid).queued, 0)  # so the planner's recovery pass looks at this job ...
    r.sadd(Keys(sid).queued, 0)
    planner = Planner(store, sid)
    planner.step()  # ... reads where RQ holds it (jobs.job_state), as every round does
    assert not by_planner.exists(), "the planner unpickled a planted job"

    r.hset(f"rq:job:{job_id}", mapping={"meta": pickle.dumps(_Touch(by_stop)), "data": pickle.dumps(_Touch(by_stop))})
    stopped = cli("stop", sid, "--redis", redis_url, cwd=tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    assert not by_stop.exists(), "`sweepq stop` unpickled a planted job"
    assert store.trial(sid, 0).state == TrialState.CANCELLED


def test_a_forged_callback_on_a_trial_job_is_refused(r: redis.Redis, redis_url: str, tmp_path: Path, out: Path) -> None:
    """The trial's own, signed job, with a callback added: the worker refuses the job (the trial
    stays queued for a clean job), so the callback is never imported or called."""
    store = Store(r)
    sid = _owner_sweep(store, tmp_path)
    job_key = f"rq:job:{store.trial(sid, 0).job_id}"
    r.hset(job_key, "success_callback_name", "tests.programs.forged_callback.touch")

    done = _burst(redis_url, cwd=tmp_path, env=_env(out))
    assert list(out.iterdir()) == [], "the forged callback was imported or the trial ran"
    assert "carries a success callback" in done.stderr
    assert r.hget(job_key, "status") == b"failed"
    assert store.trial(sid, 0).state == TrialState.QUEUED


def test_a_dead_workers_job_with_a_planted_pickle_and_callback_is_cleaned_up_safely(
    r: redis.Redis, redis_url: str, tmp_path: Path, out: Path
) -> None:
    """RQ's registry cleanup (the worker's maintenance at start, the planner's every 30 s) loads
    the abandoned job and calls its failure callback: through sweepq, neither happens."""
    store = Store(r)
    sid = _owner_sweep(store, tmp_path)
    job_id = store.trial(sid, 0).job_id
    planted = tmp_path / "planted"
    r.lrem("rq:queue:sweepq", 0, job_id)
    r.hset(
        f"rq:job:{job_id}",
        mapping={
            "status": "started",
            "meta": pickle.dumps(_Touch(planted)),
            "failure_callback_name": "tests.programs.forged_callback.touch",
        },
    )
    r.zadd("rq:wip:sweepq", {f"{job_id}:x": 1})  # expired long ago
    _burst(redis_url, cwd=tmp_path, env=_env(out))
    assert not planted.exists()
    assert list(out.iterdir()) == []
    assert r.hget(f"rq:job:{job_id}", "status") == b"failed"  # RQ's cleanup did run


def test_forged_job_shapes_are_refused(r: redis.Redis) -> None:
    q = jobs.trial_queue(r, "sweepq")
    ok = q.enqueue_call(jobs.RUN_TRIAL, args=("abc", 0, 1))
    assert jobs.job_refusal(ok) is None
    cases = {
        "os.system": q.enqueue_call("os.system", args=("true",)),
        "arguments": q.enqueue_call(jobs.RUN_TRIAL, args=("abc", 0, True)),
        "keyword": q.enqueue_call(jobs.RUN_TRIAL, args=("abc", 0, 1), kwargs={"x": 1}),
        "dependency": q.enqueue_call(jobs.RUN_TRIAL, args=("abc", 0, 1), depends_on=ok),
    }
    for what, job in cases.items():
        why = jobs.job_refusal(jobs.fetch_job(r, job.id))
        assert why is not None and (what in why or what == "os.system" and "os.system" in why), (what, why)
    r.hset(f"rq:job:{ok.id}", "stopped_callback_name", "builtins.print")
    assert "stopped callback" in (jobs.job_refusal(jobs.fetch_job(r, ok.id)) or "")
    r.hset(f"rq:job:{ok.id}", "data", pickle.dumps(("sweepq.runner.run_trial", None, ("abc", 0, 1), {})))
    assert "unreadable job data" in (jobs.job_refusal(jobs.fetch_job(r, ok.id)) or "")


def test_function_programs_run_only_from_modules_the_worker_allows(
    r: redis.Redis, redis_url: str, tmp_path: Path, out: Path
) -> None:
    store = Store(r)
    cfg = {"program": "tests.programs.fn_train:train", "metric": {"name": "loss"}}
    sid = _owner_sweep(store, tmp_path, prog=cfg["program"], metric=cfg["metric"])
    env = _env(out, SWEEPQ_ALLOW_FUNCTIONS="tests.programs.other,numpy")
    _burst(redis_url, cwd=tmp_path, env=env)
    why = _refused(store, sid)
    assert "module 'tests.programs.fn_train' is not in this worker's SWEEPQ_ALLOW_FUNCTIONS" in why
    assert not (out / "imported").exists() and list(out.iterdir()) == []


# --- the owner's side ---------------------------------------------------------------------------


def test_plan_with_no_setup_generates_a_private_key_and_its_local_workers_trust_it(
    r: redis.Redis, redis_url: str, tmp_path: Path, out: Path
) -> None:
    """No secret anywhere: the first `sweepq plan` makes one (0600) under SWEEPQ_HOME, its local
    workers get the public key (never the secret) and run every trial; the next plan reuses it."""
    home = tmp_path / "home"
    env = _keyless_env(out, home)
    env.pop("SWEEPQ_ALLOW_FUNCTIONS", None)
    cfg = write_config(
        tmp_path,
        {
            "program": program("quad.py"),
            "method": "grid",
            "metric": {"name": "loss"},
            "parameters": {"x": {"values": [0.5, 1.0]}, "y": {"value": 0.0}},
        },
    )
    argv = ["plan", str(cfg), "--redis", redis_url, "--workers", "2", "--grace", "1"]
    first = cli(*argv, cwd=tmp_path, env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    key = home / trust.KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert f"generated the signing key {key}" in first.stderr
    sid = first.stdout.splitlines()[0].strip()
    assert {t.state for t in Store(r).trials(sid)} == {TrialState.FINISHED}
    worker_logs = "".join(p.read_text() for p in (home / "logs").glob("worker-*.log"))
    assert key.read_text().strip() not in worker_logs

    secret = key.read_text()
    second = cli(*argv, cwd=tmp_path, env=env, timeout=120)
    assert second.returncode == 0, second.stderr
    assert key.read_text() == secret and "generated" not in second.stderr
    assert {t.state for t in Store(r).trials(second.stdout.splitlines()[0].strip())} == {TrialState.FINISHED}

    shown = cli("key", cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == (home / trust.PUBLIC_FILE).read_text().strip()
    assert shown.stdout.startswith("ed25519:")


def test_local_workers_get_the_public_key_and_the_sweeps_function_module_not_the_secret(tmp_path: Path) -> None:
    signer = trust.Signer(trust.new_secret(), source="test")
    env = trust.local_worker_env(signer, "pkg.mod:train")
    assert env[trust.ENV_TRUSTED_KEYS].endswith(signer.public.text)
    assert env[trust.ENV_ALLOW_FUNCTIONS].split(",")[-1] == "pkg.mod"
    assert trust.ENV_SECRET_FILE not in trust.scrubbed_environ(env)
    assert trust.ENV_ALLOW_FUNCTIONS not in trust.local_worker_env(signer, "train.py")


def test_key_generate_writes_a_private_secret_and_prints_its_public_key(tmp_path: Path) -> None:
    path = tmp_path / "owner.key"
    made = cli("key", "--generate", str(path), cwd=tmp_path, env=_keyless_env(tmp_path, tmp_path / "h"))
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert made.stdout.strip() == trust.Signer(path.read_text(), source="x").public.text
    again = cli("--secret-file", str(path), "key", cwd=tmp_path, env=_keyless_env(tmp_path, tmp_path / "h"))
    assert again.stdout == made.stdout
    refused = cli("key", "--generate", str(path), cwd=tmp_path)
    assert refused.returncode == 2 and "exists" in refused.stderr


def test_a_short_secret_is_a_clear_error(tmp_path: Path) -> None:
    env = _keyless_env(tmp_path, tmp_path / "h", SWEEPQ_SECRET="hunter2")
    done = cli("key", cwd=tmp_path, env=env)
    assert done.returncode == 2
    assert "SWEEPQ_SECRET: the secret has 7 characters; it needs at least 32" in done.stderr
    assert "Traceback" not in done.stderr


def test_signatures_cover_config_workdir_number_and_params() -> None:
    signer = trust.Signer("s" * 40, source="test")
    verifier = trust.Verifier([signer.public])
    config = {"program": "train.py", "command": ["${program}"], "parameters": {"x": {"values": [1, 2.5]}}}
    sig = signer.sign_sweep("abc", config, "/srv")
    assert verifier.check("c", trust.sweep_message("abc", config, "/srv"), sig) is None
    assert verifier.check("c", trust.sweep_message("abd", config, "/srv"), sig) is not None
    assert verifier.check("c", trust.sweep_message("abc", config, "/tmp"), sig) is not None
    assert verifier.check("c", trust.sweep_message("abc", {**config, "program": "x.py"}, "/srv"), sig) is not None
    tsig = signer.sign_trial("abc", 3, {"x": 2.5}, sig)
    assert verifier.check("t", trust.trial_message("abc", 3, {"x": 2.5}, sig), tsig) is None
    assert verifier.check("t", trust.trial_message("abc", 4, {"x": 2.5}, sig), tsig) is not None
    assert verifier.check("t", trust.trial_message("abc", 3, {"x": 2.4}, sig), tsig) is not None
    assert verifier.check("t", trust.trial_message("abc", 3, {"x": 2.5}, "other"), tsig) is not None
    assert verifier.check("t", b"m", "ed25519:zz") == "t has a malformed signature"
    assert verifier.check("t", b"m", None) == "t is not signed"
    assert trust.Signer("s" * 40, source="again").public == signer.public  # the secret is the key


@pytest.mark.parametrize(
    ("command", "warns"),
    [
        (["/bin/sh", "-c", "python train.py"], True),
        (["bash", "-lc", "x"], True),
        (["${env}", "bash", "-c", "x"], True),
        (["/usr/bin/env", "FOO=1", "zsh", "-ec", "x"], True),
        (["${env}", "${interpreter}", "${program}", "${args}"], False),
        (["bash", "run.sh", "${args}"], False),
        (["python", "-c", "print(1)"], False),
    ],
)
def test_shell_commands_warn(command: list[str], warns: bool) -> None:
    assert (trust.shell_warning(command) is not None) == warns


def test_validate_warns_about_a_shell_command(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        {
            "program": "t.py",
            "method": "grid",
            "command": ["/bin/sh", "-c", "touch x"],
            "parameters": {"x": {"value": 1}},
        },
    )
    done = cli("validate", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "warning: command: runs a shell script (/bin/sh -c ...)" in done.stderr


def test_the_gpu_worker_script_passes_trusted_keys_and_allowed_modules(tmp_path: Path) -> None:
    keys = tmp_path / "trusted_keys"
    keys.write_text(trust.Signer(trust.new_secret(), source="t").public.text + "\n")
    script = Path(__file__).resolve().parent.parent / "workers" / "start-gpu-workers.sh"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWEEPQ_", "CUDA_"))}
    argv = ["bash", str(script), "--dry-run", "--gpus", "1", "--url", "redis://ctl:6379/0"]
    done = subprocess.run(
        [*argv, "--trusted-keys", str(keys), "--allow-functions", "pkg.train"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"SWEEPQ_TRUSTED_KEYS_FILE={keys}" in done.stdout and "SWEEPQ_ALLOW_FUNCTIONS=pkg.train" in done.stdout
    bare = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert "warning: no --trusted-keys" in bare.stderr
    bad = subprocess.run([*argv, "--trusted-keys", str(tmp_path / "nope")], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "cannot read" in bad.stderr


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))


def test_a_verified_config_is_checked_again_when_its_record_changes(r: redis.Redis, tmp_path: Path) -> None:
    """A warm horse checks a sweep's config signature once per config it read (`_check_sweep`):
    a config rewritten in Redis and read by a new store is checked again, and refused."""
    import dataclasses

    store = Store(r)
    sid = _owner_sweep(store, tmp_path)
    sweep, trial = store.sweep(sid), store.trial(sid, 0)
    verifier = trust.Verifier([store.signer.public])
    assert trust.refusal(sweep, trial, verifier=verifier) is None
    assert trust.refusal(sweep, trial, verifier=verifier) is None  # from the cache
    forged = {**sweep.raw_config, "program": "evil.py"}
    why = trust.refusal(dataclasses.replace(sweep, raw_config=forged), trial, verifier=verifier)
    assert why is not None and "does not match its signature" in why
    moved = trust.refusal(
        dataclasses.replace(sweep, settings=dataclasses.replace(sweep.settings, workdir="/")), trial, verifier=verifier
    )
    assert moved is not None and "does not match" in moved
