"""A trial that logs five metric rows through the SDK."""

import sweepq

run = sweepq.init()
for step in range(5):
    sweepq.log({"loss": 1.0 / (step + 1)})
run.finish()
