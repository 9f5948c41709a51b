"""A no-op trial for benchmarks/overhead.py: starts, ends."""
