"""The composition root: the one place that wires settings to an engine and the write path, so callers
outside the orchestrator package (workers, scripts) get a service without touching the store."""

from __future__ import annotations

from orchestrator.services import RunService
from orchestrator.settings import Settings
from orchestrator.store.engine import make_engine


def build_service(settings: Settings, pool_size: int = 5) -> RunService:
    if not settings.database_url:
        raise RuntimeError("ORCH_DATABASE_URL is not set")
    return RunService(make_engine(settings.database_url, pool_size=pool_size), settings)
