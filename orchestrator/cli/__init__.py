"""The `orchestrator` command: run the system or one role of it, manage keys, drive runs over HTTP."""

from __future__ import annotations

import typer

from orchestrator.cli.keys import keys_app
from orchestrator.cli.roles import roles_app
from orchestrator.cli.runs import runs_app

app = typer.Typer(
    help="Event-sourced run orchestrator. `up` runs everything on embedded PostgreSQL and Redis; the other "
    "commands run one role each against ORCH_DATABASE_URL / ORCH_REDIS_URL (or the embedded servers).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.registered_commands.extend(roles_app.registered_commands)
app.add_typer(keys_app, name="keys")
app.add_typer(runs_app, name="runs")


def main() -> None:
    app()
