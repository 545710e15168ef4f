"""The `orchestrator` command: run the system or one role of it, manage keys, drive runs over HTTP."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from orchestrator.cli.common import CliError
from orchestrator.cli.keys import keys_app
from orchestrator.cli.limits import limits_app
from orchestrator.cli.records import records_app
from orchestrator.cli.retention import retention_app
from orchestrator.cli.roles import roles_app
from orchestrator.cli.runs import runs_app
from orchestrator.cli.schedules import schedules_app


class _Commands(TyperGroup):
    """The command boundary: every `CliError` raised below becomes one line on stderr and an exit code."""

    def invoke(self, ctx: Any) -> Any:  # typer's Context; its base class is typer's private copy of click
        try:
            return super().invoke(ctx)
        except CliError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=_Commands,
    help="Event-sourced run orchestrator. `up` runs everything on embedded PostgreSQL and Redis; the other "
    "commands run one role each against ORCH_DATABASE_URL / ORCH_REDIS_URL (or the embedded servers).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.registered_commands.extend(roles_app.registered_commands)
app.add_typer(keys_app, name="keys")
app.add_typer(limits_app, name="limits")
app.add_typer(runs_app, name="runs")
app.add_typer(records_app, name="records")
app.add_typer(retention_app, name="retention")
app.add_typer(schedules_app, name="schedules")


def main() -> None:
    app()
