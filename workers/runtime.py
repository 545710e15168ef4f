"""Per-process resources of a worker child: created lazily after fork, never shared across forks."""

from __future__ import annotations

import os
import socket
from functools import lru_cache

from orchestrator.bootstrap import build_service
from orchestrator.services import RunService
from orchestrator.settings import get_settings


@lru_cache(maxsize=1)
def service() -> RunService:
    return build_service(get_settings(), pool_size=2)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
