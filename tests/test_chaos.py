"""The chaos test: 100 trials, 4 workers kill -9'd at random at least 10 times, the planner once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import redis

from tests.chaos import run_chaos


@pytest.mark.slow
def test_chaos_every_trial_accounted_for_exactly_once(r: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    result = run_chaos(redis_url, tmp_path, trials=100, workers=4, kills=10)
    print(result.summary())
    assert result.worker_kills >= 10 and result.planner_kills == 1
    assert result.trials == 100 and result.finished == 100  # run_cap exact
    per_attempt = Counter(result.completions)
    assert max(per_attempt.values()) == 1, "an attempt ran to completion twice"
    assert result.rq_mismatches == []
