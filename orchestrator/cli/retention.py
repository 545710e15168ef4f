"""`orchestrator retention run`: one retention pass now, as the reconciler role does on its schedule."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli.common import CliError, DataDir, engine_for, err, migrated_settings
from orchestrator.cli.output import print_json

retention_app = typer.Typer(
    help="Delete finished run history past its retention period.", no_args_is_help=True
)


@retention_app.command("run")
def retention_run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be deleted; delete nothing.")
    ] = False,
    tenant: Annotated[
        list[str] | None, typer.Option(help="Only this tenant (repeatable); default: every tenant.")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Delete the finished run trees older than each tenant's period (ORCH_RETENTION_DAYS, overridden by
    ORCH_RETENTION_TENANT_DAYS), with their events and read-model rows; prints the counts as JSON."""
    from orchestrator.processes import retention

    settings = migrated_settings(data_dir)
    if not retention.configured(settings):
        raise CliError("no retention period is set: set ORCH_RETENTION_DAYS or ORCH_RETENTION_TENANT_DAYS")
    report = retention.apply_retention(engine_for(settings), settings, tenants=tenant, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    err.print(f"{verb} {report.trees} run trees ({report.runs} runs, {report.events} events)")
    print_json({"dry_run": dry_run, **report.__dict__})
