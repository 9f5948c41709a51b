"""A trial that prints five metric lines (the stdout protocol), no SDK."""

for step in range(5):
    print(f"loss={1.0 / (step + 1)} step={step}", flush=True)
