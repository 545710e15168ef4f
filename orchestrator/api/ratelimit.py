"""Per-key token buckets: a burst up to `burst`, refilled at `rate` per second.

`SharedRateLimiter` keeps one bucket per key for every API replica in Redis (orchestrator.api.shared_limits)
and falls back to this process's own `RateLimiter` while Redis is unreachable (failing open to the
per-process limit)."""

from __future__ import annotations

import threading
import time

from orchestrator.api.shared_limits import SharedRedis


class RateLimiter:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        """Take a token: 0.0 when allowed, else the seconds until one will be available."""
        now = time.monotonic()
        with self._lock:
            tokens, stamp = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - stamp) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


class SharedRateLimiter(RateLimiter):
    """One bucket per key across every replica; this process's bucket while Redis is unreachable."""

    def __init__(self, rate: float, burst: int, shared: SharedRedis) -> None:
        super().__init__(rate, burst)
        self._shared = shared

    def acquire(self, key: str) -> float:
        """Blocking (one Redis round trip): call it from a worker thread, not the event loop."""
        wait = self._shared.take_token(self._shared.key("rate", key), self.rate, int(self.burst))
        return super().acquire(key) if wait is None else wait
