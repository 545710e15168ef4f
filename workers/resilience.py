"""Riding out database blips inside a worker.

A dropped connection or a short failover must not end a run: job-side writes and cancel checks are
retried for a few seconds, and the write that ends an attempt for up to a lease period (the lease is
kept renewed meanwhile, so nobody else takes the run over).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from orchestrator.services import RunContended, StoreUnavailable

T = TypeVar("T")
# The service's words for "nothing was applied, the same call may succeed in a moment".
TRANSIENT = (StoreUnavailable, RunContended)


def retried(call: Callable[[], T], seconds: float) -> T:
    retrying = Retrying(
        retry=retry_if_exception_type(TRANSIENT),
        stop=stop_after_delay(seconds),
        wait=wait_exponential(multiplier=0.1, max=2.0),
        reraise=True,
    )
    return retrying(call)
