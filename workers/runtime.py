"""Per-process resources of a worker child: created lazily after fork, never shared across forks."""

from __future__ import annotations

import os
import socket
from functools import lru_cache

from orchestrator.services import RunService
from orchestrator.settings import get_settings
from orchestrator.store.engine import make_engine


@lru_cache(maxsize=1)
def service() -> RunService:
    settings = get_settings()
    if not settings.database_url:
        raise RuntimeError("ORCH_DATABASE_URL is not set in the worker process")
    return RunService(make_engine(settings.database_url, pool_size=2), settings)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
