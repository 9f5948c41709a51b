"""sweepq: self-hosted hyperparameter sweeps in the W&B Sweeps language on Redis + RQ."""

__all__: list[str] = []
