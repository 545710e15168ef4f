"""Concurrent HTTP clients: `clients` coroutines share one connection pool and take operations from one
counter until `n` are done, timing each. One event loop in one thread keeps the load generator's own
CPU use low on a 2-core machine that also runs the server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.benchmarks.common import percentile

# One operation: the client, the operation's index, and the calling coroutine's own state (a walk's
# cursor); it returns the response, which must be a success.
Operation = Callable[[httpx.AsyncClient, int, dict[str, Any]], Awaitable[httpx.Response]]


@dataclass
class LoadResult:
    count: int
    seconds: float
    latencies: list[float] = field(repr=False)
    responses: list[Any] = field(repr=False)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    def values(self, prefix: str) -> dict[str, float]:
        """`<prefix>_per_s`, `<prefix>_p50_ms`, `<prefix>_p99_ms` for a sample."""
        return {
            f"{prefix}_per_s": self.rate,
            f"{prefix}_p50_ms": 1000 * (percentile(self.latencies, 50) or 0.0),
            f"{prefix}_p99_ms": 1000 * (percentile(self.latencies, 99) or 0.0),
        }


async def _drive(
    base_url: str, headers: dict[str, str], n: int, clients: int, operation: Operation, keep: bool
) -> LoadResult:
    latencies: list[float] = []
    kept: list[Any] = []
    next_index = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=60) as client:

        async def worker() -> None:
            nonlocal next_index
            state: dict[str, Any] = {}
            while next_index < n:
                index = next_index
                next_index += 1
                began = time.perf_counter()
                response = await operation(client, index, state)
                latencies.append(time.perf_counter() - began)
                if response.status_code >= 300:
                    raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
                if keep:
                    kept.append(response.json())

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        seconds = time.perf_counter() - began
    return LoadResult(n, seconds, latencies, kept)


def run_load(
    base_url: str,
    headers: dict[str, str],
    n: int,
    operation: Operation,
    clients: int = 16,
    keep_bodies: bool = False,
) -> LoadResult:
    """`n` operations by `clients` concurrent clients; `keep_bodies` keeps each response's JSON."""
    return asyncio.run(_drive(base_url, headers, n, clients, operation, keep_bodies))
