"""Routes whose blocking endpoints cost one hop to a worker thread, not two.

FastAPI runs a plain `def` endpoint in the thread pool, and then, because the endpoint was not a
coroutine, runs the validation of what it returned in the thread pool again. Each hop is a thread wake-up
and a return to the event loop: tens of microseconds of CPU, and a wait for the GIL under load (py-spy put
the hops of a get by id at about a tenth of its CPU). `OneHopRoute` wraps such an endpoint in a coroutine
that runs it in the pool once; the validation of a model it returns (an `isinstance` check) then runs on the
event loop. Endpoints stay plain functions, so they can block on PostgreSQL as before.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute


def in_worker_thread(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """`endpoint` as a coroutine running it in the thread pool; FastAPI reads the parameters, return type
    and docstring of the function it wraps (`functools.wraps` sets `__wrapped__`)."""

    @functools.wraps(endpoint)
    async def run(*args: Any, **kwargs: Any) -> Any:
        return await run_in_threadpool(endpoint, *args, **kwargs)

    return run


def _blocking(endpoint: Callable[..., Any]) -> bool:
    unwrapped = inspect.unwrap(endpoint)
    return not (
        inspect.iscoroutinefunction(unwrapped)
        or inspect.isgeneratorfunction(unwrapped)
        or inspect.isasyncgenfunction(unwrapped)
    )


class OneHopRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, in_worker_thread(endpoint) if _blocking(endpoint) else endpoint, **kwargs)


def api_router(route_class: type[OneHopRoute] = OneHopRoute, **kwargs: Any) -> APIRouter:
    """An `APIRouter` whose routes are `OneHopRoute`s (or of a subclass of it)."""
    return APIRouter(route_class=route_class, **kwargs)
