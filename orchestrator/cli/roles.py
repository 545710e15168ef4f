"""The role commands: run the whole system (`up`) or one role of it, migrate, rebuild."""

from __future__ import annotations

import gc
import os
import time
from typing import Annotated

import typer

from orchestrator.cli.common import (
    DataDir,
    cli_settings,
    engine_for,
    err,
    migrated_settings,
    resolved_settings,
)
from orchestrator.log import configure as configure_logging

roles_app = typer.Typer()


@roles_app.command()
def up(
    data_dir: DataDir = None,
    port: Annotated[int | None, typer.Option(help="API port (default 8000, ORCH_PORT).")] = None,
    host: Annotated[str | None, typer.Option(help="API host (default 127.0.0.1).")] = None,
) -> None:
    """Run the whole system (API, relay, projector, reconciler, worker); Ctrl-C stops it cleanly."""
    from orchestrator.processes.supervisor import up as run_up

    settings = cli_settings(data_dir, port=port, host=host)
    configure_logging(settings.log_level)
    raise typer.Exit(run_up(settings))


@roles_app.command()
def migrate(data_dir: DataDir = None) -> None:
    """Apply database migrations (idempotent)."""
    migrated_settings(data_dir)
    err.print("migrations applied")


@roles_app.command()
def serve(
    data_dir: DataDir = None,
    port: Annotated[int | None, typer.Option(help="Port (default ORCH_PORT or 8000).")] = None,
    host: Annotated[str | None, typer.Option(help="Host (default ORCH_HOST or 127.0.0.1).")] = None,
) -> None:
    """Serve the HTTP API."""
    import uvicorn

    from orchestrator.api.app import create_app

    settings = resolved_settings(data_dir, port=port, host=host)
    # log_config=None: uvicorn keeps its loggers but not its handlers, so its records go through ours.
    app = create_app(settings)
    # What is alive now (modules, routes, models) lives as long as the process: frozen out of the
    # collector's sight, a full collection scans only what requests made. Without it each one walked the
    # whole startup heap, pausing every open stream by up to a few hundred ms (bench_sse's p99).
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", log_config=None)


@roles_app.command()
def worker(
    data_dir: DataDir = None,
    concurrency: Annotated[
        int | None, typer.Option(help="Processes (default ORCH_WORKER_CONCURRENCY).")
    ] = None,
    queues: Annotated[str, typer.Option(help="Comma-separated queue classes: short,long.")] = "short,long",
) -> None:
    """Run a Celery worker executing runs."""
    from workers import metrics

    settings = resolved_settings(data_dir, worker_concurrency=concurrency)
    if settings.worker_metrics_port is not None:
        metrics.prepare(settings.data_dir)  # before the app's modules import prometheus-client

    from workers.app import create_app as create_celery

    if settings.worker_metrics_port is not None:
        metrics.serve(settings.host, settings.worker_metrics_port)
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


@roles_app.command()
def relay(data_dir: DataDir = None) -> None:
    """Publish outbox rows to the broker."""
    from orchestrator.processes import roles

    settings = resolved_settings(data_dir)
    roles.relay(settings, engine_for(settings))


@roles_app.command()
def project(data_dir: DataDir = None) -> None:
    """Keep the read models up to date with the log."""
    from orchestrator.processes import roles

    settings = resolved_settings(data_dir)
    roles.projector(settings, engine_for(settings))


@roles_app.command()
def reconcile(data_dir: DataDir = None) -> None:
    """Recover lost attempts and re-dispatch runs the broker dropped."""
    from orchestrator.processes import roles

    settings = resolved_settings(data_dir)
    roles.reconciler(settings, engine_for(settings))


@roles_app.command()
def rebuild(data_dir: DataDir = None) -> None:
    """Replay every read model from position 0 into copies of its tables, then swap them in.

    Online: readers and the live projector keep the old tables until a short swap;
    a failed rebuild changes nothing."""
    from rich.progress import BarColumn, Progress, TaskID, TextColumn

    from orchestrator.projections.runner import PROJECTIONS
    from orchestrator.projections.runner import rebuild as rebuild_projection

    settings = migrated_settings(data_dir)
    engine = engine_for(settings)
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("position {task.completed:,.0f}"))
    for projection in PROJECTIONS:
        started = time.monotonic()
        with Progress(*columns, console=err, transient=True) as bar:
            task = bar.add_task(projection.name, total=None)

            def show(position: int, head: int, task: TaskID = task, bar: Progress = bar) -> None:
                bar.update(task, completed=position, total=max(head, position))

            count = rebuild_projection(engine, projection, progress=show)
        err.print(f"{projection.name}: replayed {count} events in {time.monotonic() - started:.1f}s")
