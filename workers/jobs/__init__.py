"""Job handlers by kind. Each kind's parameters and queue are declared in schemas.jobs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from workers.context import JobContext
from workers.jobs import sleep

JobResult = dict[str, Any] | None
Handler = Callable[[JobContext, Any], JobResult]

HANDLERS: dict[str, tuple[type[BaseModel], Handler]] = {
    "sleep": (sleep.SleepParams, sleep.run),
}
