"""What-if for benchmarks/overhead.py (not sweepq's default): sweepq's hardened worker with the
runner's imports (sweepq.config pulls in numpy) done once in the worker, so each forked work
horse inherits them instead of importing them again for every trial."""

import sweepq.command  # noqa: F401
import sweepq.config  # noqa: F401
import sweepq.runner  # noqa: F401
import sweepq.sdk  # noqa: F401
from sweepq.worker import Worker

__all__ = ["Worker"]
