"""No-op trials in function mode for benchmarks/overhead.py (`program: noop_fn:main`, and
`noop_fn:with_sdk` for one that reports a metric through the SDK)."""


def main() -> None:
    pass


def with_sdk() -> None:
    import sweepq

    sweepq.init()
    sweepq.log({"loss": 0.0})


def rq_noop() -> None:
    """The job of the RQ SimpleWorker row: nothing at all."""
