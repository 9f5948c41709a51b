"""Stands in for "any importable callable" an attacker could name in a forged RQ job field
(`success_callback_name`, `failure_callback_name`, ...): importing or calling it leaves a mark in
SWEEPQ_TEST_OUT, so a test can show it was never imported or called."""

import os
from pathlib import Path
from typing import Any

_OUT = os.environ.get("SWEEPQ_TEST_OUT")
if _OUT:
    Path(_OUT, "imported").write_text(str(os.getpid()))


def touch(*args: Any, **kwargs: Any) -> None:
    if _OUT:
        Path(_OUT, "called").write_text(repr(args)[:200])
