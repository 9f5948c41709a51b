"""A no-op trial in function mode for benchmarks/overhead.py (`program: noop_fn:main`)."""


def main() -> None:
    pass
