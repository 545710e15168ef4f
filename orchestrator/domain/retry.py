"""Backoff policy for retried attempts: exponential with jitter, capped."""

from __future__ import annotations

from datetime import datetime, timedelta


def retry_delay(attempt: int, base: float, cap: float, jitter: float) -> float:
    """Seconds to wait after `attempt` failed. `jitter` in [0, 1) spreads retries of a burst apart."""
    exponential = min(cap, base * float(2 ** max(0, attempt - 1)))
    return exponential * (0.5 + 0.5 * jitter)


def retry_at(now: datetime, attempt: int, base: float, cap: float, jitter: float) -> datetime:
    return now + timedelta(seconds=retry_delay(attempt, base, cap, jitter))
