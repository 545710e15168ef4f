"""The `orchestrator` command: run the system or one role of it, manage keys, drive runs."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from orchestrator.cli_runs import runs_app
from orchestrator.logging import configure as configure_logging
from orchestrator.settings import Settings, get_settings

app = typer.Typer(
    help="Event-sourced run orchestrator. `up` runs everything on embedded PostgreSQL and Redis; the other "
    "commands run one role each against ORCH_DATABASE_URL / ORCH_REDIS_URL (or the embedded servers).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(runs_app, name="runs")

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Embedded data folder (default: ORCH_DATA_DIR or ./.orchestrator)."),
]
err = Console(stderr=True)


def _settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    settings = get_settings()
    updates = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        updates["data_dir"] = data_dir
        os.environ["ORCH_DATA_DIR"] = str(data_dir)
    return settings.model_copy(update=updates)


def _resolved(data_dir: Path | None = None, **overrides: Any) -> Settings:
    from orchestrator import embedded

    settings = _settings(data_dir, **overrides)
    configure_logging(settings.log_level)
    resolved, _services = embedded.resolve(settings)
    return resolved


def _migrated(data_dir: Path | None = None, **overrides: Any) -> Settings:
    from orchestrator.store.migrate import upgrade

    settings = _resolved(data_dir, **overrides)
    upgrade(settings.database_url or "")
    return settings


def _engine(settings: Settings) -> Any:
    from orchestrator.store.engine import make_engine

    return make_engine(settings.database_url or "", pool_size=4)


@app.command()
def up(
    data_dir: DataDir = None,
    port: Annotated[int | None, typer.Option(help="API port (default 8000, ORCH_PORT).")] = None,
    host: Annotated[str | None, typer.Option(help="API host (default 127.0.0.1).")] = None,
) -> None:
    """Run the whole system (API, relay, projector, reconciler, worker); Ctrl-C stops it cleanly."""
    from orchestrator.supervisor import up as run_up

    settings = _settings(data_dir, port=port, host=host)
    configure_logging(settings.log_level)
    raise typer.Exit(run_up(settings))


@app.command()
def migrate(data_dir: DataDir = None) -> None:
    """Apply database migrations (idempotent)."""
    _migrated(data_dir)
    err.print("migrations applied")


@app.command()
def serve(
    data_dir: DataDir = None,
    port: Annotated[int | None, typer.Option(help="Port (default ORCH_PORT or 8000).")] = None,
    host: Annotated[str | None, typer.Option(help="Host (default ORCH_HOST or 127.0.0.1).")] = None,
) -> None:
    """Serve the HTTP API."""
    import uvicorn

    from orchestrator.api.app import create_app

    settings = _resolved(data_dir, port=port, host=host)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")


@app.command()
def worker(
    data_dir: DataDir = None,
    concurrency: Annotated[
        int | None, typer.Option(help="Processes (default ORCH_WORKER_CONCURRENCY).")
    ] = None,
    queues: Annotated[str, typer.Option(help="Comma-separated queue classes: short,long.")] = "short,long",
) -> None:
    """Run a Celery worker executing runs."""
    from workers.app import create_app as create_celery

    settings = _resolved(data_dir, worker_concurrency=concurrency)
    if settings.visibility_timeout_seconds < 2 * settings.task_time_limit_seconds:
        # Redis would hand a still-running task out again; attempts make that harmless but wasteful.
        err.print(
            "[yellow]ORCH_VISIBILITY_TIMEOUT_SECONDS is below twice ORCH_TASK_TIME_LIMIT_SECONDS: long runs "
            "will be redelivered (and the copies dropped)[/yellow]"
        )
    celery = create_celery(settings)
    names = ",".join(settings.queue_name(q.strip()) for q in queues.split(",") if q.strip())
    # SIGTERM becomes a soft shutdown: running tasks get the grace period, then are re-queued.
    os.environ.setdefault("REMAP_SIGTERM", "SIGQUIT")
    celery.worker_main(
        [
            "worker",
            "-Q",
            names,
            "-c",
            str(settings.worker_concurrency),
            "--loglevel",
            "WARNING",
            "-n",
            f"orch-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )


@app.command()
def relay(data_dir: DataDir = None) -> None:
    """Publish outbox rows to the broker."""
    from orchestrator import roles

    settings = _resolved(data_dir)
    roles.relay(settings, _engine(settings))


@app.command()
def project(data_dir: DataDir = None) -> None:
    """Keep the read models up to date with the log."""
    from orchestrator import roles

    settings = _resolved(data_dir)
    roles.projector(settings, _engine(settings))


@app.command()
def reconcile(data_dir: DataDir = None) -> None:
    """Recover lost attempts and re-dispatch runs the broker dropped."""
    from orchestrator import roles

    settings = _resolved(data_dir)
    roles.reconciler(settings, _engine(settings))


@app.command()
def rebuild(data_dir: DataDir = None) -> None:
    """Drop every read model and replay it from position 0 (readers keep the old rows until done)."""
    from orchestrator.projections.runner import PROJECTIONS
    from orchestrator.projections.runner import rebuild as rebuild_projection

    settings = _migrated(data_dir)
    engine = _engine(settings)
    for projection in PROJECTIONS:
        started = time.monotonic()
        count = rebuild_projection(engine, projection)
        err.print(f"{projection.name}: replayed {count} events in {time.monotonic() - started:.1f}s")


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant the key acts for.", min=1)],
    name: Annotated[str | None, typer.Option(help="A label to recognise the key by.")] = None,
    grant: Annotated[
        list[str] | None,
        typer.Option(help="A further tenant the key may name (taxonomy surface); repeatable."),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Create an API key. The key is printed once, alone on the last line of stdout."""
    from orchestrator.store import keys

    if not tenant or len(tenant) > 255:
        raise typer.BadParameter("tenant must be 1-255 characters", param_hint="--tenant")
    settings = _migrated(data_dir)
    with _engine(settings).begin() as conn:
        key, record = keys.create(conn, tenant, name, tuple(grant or ()))
    err.print(f"created key {record.prefix}… (id {record.id}) for tenant {tenant!r}; it is shown only once")
    print(key)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="Key id or its display prefix.")], data_dir: DataDir = None
) -> None:
    """Revoke a key; it is refused from its next request on."""
    from orchestrator.store import keys

    settings = _migrated(data_dir)
    with _engine(settings).begin() as conn:
        count = keys.revoke(conn, key_id)
    if not count:
        err.print("no active key matches")
        raise typer.Exit(1)
    err.print(f"revoked {count} key(s)")


@keys_app.command("list")
def keys_list(tenant: Annotated[str | None, typer.Option()] = None, data_dir: DataDir = None) -> None:
    """List keys (prefixes only; keys themselves are never stored)."""
    from orchestrator.store import keys

    settings = _migrated(data_dir)
    with _engine(settings).connect() as conn:
        records = keys.list_keys(conn, tenant)
    table = Table("id", "tenant", "grants", "prefix", "name", "created", "revoked")
    for r in records:
        revoked = str(r.revoked_at or "")
        table.add_row(
            str(r.id), r.tenant_id, ",".join(r.grants), r.prefix, r.name or "", str(r.created_at), revoked
        )
    Console().print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
