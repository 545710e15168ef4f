"""`GET /metrics`: Prometheus text exposition of the log's figures (read from PostgreSQL at scrape time,
the same on every replica) and of this process's own (append latency, open SSE streams).

Open by default, like most exporters, for a Prometheus on the same private network; set
`ORCH_METRICS_TOKEN` to require `Authorization: Bearer <token>` where tenants can reach the API (the
run metrics name the busiest tenants). Not in the OpenAPI document: it is for the scraper, not callers.
"""

from __future__ import annotations

import hmac

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from orchestrator.api.deps import Unauthenticated
from orchestrator.api.routing import api_router
from orchestrator.metrics.collector import GaugeCollector, LogCollector
from orchestrator.projections.runner import PROJECTIONS
from orchestrator.settings import Settings

router = api_router(include_in_schema=False)


def install(app: FastAPI) -> None:
    """A registry of this app's own (several apps may share a process, in tests) beside the process-wide
    default one."""
    settings: Settings = app.state.settings
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        LogCollector(app.state.engine, settings.metrics_top_tenants, [p.name for p in PROJECTIONS])
    )

    def open_streams() -> float:
        slots = getattr(app.state, "stream_slots", None)
        return float(slots.open) if slots is not None else 0.0

    registry.register(
        GaugeCollector("orch_sse_streams_active", "SSE streams open in this API process.", open_streams)
    )
    app.state.metrics_registry = registry
    app.include_router(router)


def _authorized(request: Request, token: str | None) -> bool:
    if token is None:
        return True
    presented = request.headers.get("authorization", "")
    scheme, _, credentials = presented.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), token.encode())


@router.get("/metrics")
def metrics(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    if not _authorized(request, settings.metrics_token):
        raise Unauthenticated()
    body = generate_latest(request.app.state.metrics_registry) + generate_latest(REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
