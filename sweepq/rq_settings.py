"""RQ settings from `SWEEPQ_REDIS_URL`, for workers on a Sentinel-managed Redis.

`rq worker --url` takes only a plain Redis URL. With a sentinel URL, start the worker with
`SWEEPQ_REDIS_URL=redis+sentinel://... rq worker -c sweepq.rq_settings -w sweepq.worker.Worker`:
RQ then builds its connection from its own SENTINEL settings (it reads this module's uppercase
names), follows a failover, and sweepq's runner hands the trial the same sentinel URL.
"""

from __future__ import annotations

import os

from sweepq.server import rq_settings

globals().update(rq_settings(os.environ.get("SWEEPQ_REDIS_URL") or "redis://localhost:6379/0"))
