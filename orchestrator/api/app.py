"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.engine import Engine

from orchestrator import tracing
from orchestrator.api import (
    bulk,
    corpus_jobs,
    docs,
    errors,
    features,
    health,
    limits,
    metrics,
    records,
    results,
    run_activity,
    run_counts,
    runs,
    schedules,
    sse,
    stream,
    ui,
    workflows,
)
from orchestrator.api.correlation import RequestId
from orchestrator.api.guards import RequestGuard
from orchestrator.api.key_cache import KeyCache
from orchestrator.api.ratelimit import RateLimiter, SharedRateLimiter
from orchestrator.api.shared_limits import SharedRedis, namespace_of
from orchestrator.api.surfaces import data_products, list_jobs, task_runs, taxonomy, taxonomy_tree
from orchestrator.api.tracing import NO_NATIVE_TELEMETRY, Traced
from orchestrator.api.unhandled import CatchAll
from orchestrator.services import RunService
from orchestrator.settings import Settings
from orchestrator.store import tenancy
from orchestrator.store.engine import make_engine
from orchestrator.text_records import TextRecords


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    if not settings.database_url:
        raise RuntimeError("create_app needs a resolved database_url")
    app = FastAPI(
        title="Orchestrator",
        version="0.1.0",
        description="Event-sourced run orchestrator: submit runs, follow their events, read their state.",
        lifespan=sse.lifespan,
        docs_url=None,  # served by `docs` from local files instead of a CDN
        redoc_url=None,
        telemetry=NO_NATIVE_TELEMETRY,
    )
    app.state.settings = settings
    app.state.engine = engine or make_engine(settings.database_url)
    tenancy.install(app.state.engine)
    app.state.service = RunService(app.state.engine, settings)
    app.state.datasets = TextRecords(app.state.engine)
    # Rate limits and the per-key stream cap are shared by every replica through the broker's Redis.
    shared = SharedRedis(settings.redis_url, namespace_of(settings)) if settings.redis_url else None
    app.state.shared_limits = shared
    rate, burst = settings.rate_limit_per_second, settings.rate_limit_burst
    app.state.key_cache = KeyCache()
    app.state.limiter = SharedRateLimiter(rate, burst, shared) if shared else RateLimiter(rate, burst)
    errors.install(app)
    docs.install(app)
    ui.install(app)
    app.include_router(health.router)
    metrics.install(app)
    app.include_router(run_counts.router)
    app.include_router(run_activity.router)
    app.include_router(bulk.router)  # before runs: its `:cancel` must not read as a run id
    app.include_router(runs.router)
    app.include_router(limits.router)
    app.include_router(features.router)
    app.include_router(results.router)
    app.include_router(taxonomy.router)
    app.include_router(taxonomy_tree.router)
    app.include_router(task_runs.router)
    app.include_router(list_jobs.router)
    app.include_router(stream.router)
    app.include_router(data_products.router)
    app.include_router(records.router)
    app.include_router(corpus_jobs.router)
    app.include_router(workflows.router)
    app.include_router(schedules.router)
    app.add_middleware(
        RequestGuard,
        max_bytes=settings.max_body_bytes,
        upload_max_bytes=settings.upload_max_bytes,
        upload_paths=(features.PATH,),
        path_max_bytes={"/v1/records": settings.records_max_body_bytes},
    )
    app.add_middleware(CatchAll)  # nothing reaches uvicorn as an exception
    if tracing.configure(settings.otel_enabled, "orchestrator-api", settings.otel_exporter):
        app.add_middleware(Traced)
    app.add_middleware(RequestId)  # outermost of ours: every answer, CatchAll's 500 too, carries the id
    return app
