"""Logs through the SDK: NaN, a string, inf and None for the metric, then one real value."""

import sweepq

run = sweepq.init()
sweepq.log({"loss": float("nan"), "note": "nan"})
sweepq.log({"loss": "not-a-number"})
sweepq.log({"loss": float("inf")})
sweepq.log({"loss": None, "acc": 0.1})
sweepq.log({"loss": 0.75})
sweepq.finish()
