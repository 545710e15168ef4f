"""`orchestrator schedules ...`: a tenant's recurring schedules, written in the database as the API writes
them (same checks, same events); the reconciler fires them."""

from __future__ import annotations

import json
from typing import Annotated, Any
from uuid import UUID

import typer

from orchestrator.cli.common import CliError, DataDir, engine_for, err, migrated_settings
from orchestrator.cli.output import print_json, print_table

schedules_app = typer.Typer(
    help="Add, show, pause, resume and remove recurring schedules.", no_args_is_help=True
)

Tenant = Annotated[str, typer.Option(help="The tenant the schedule belongs to.", min=1)]
ScheduleId = Annotated[UUID, typer.Argument(help="The schedule's id.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ACTOR = "cli"


def _labels(values: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{value!r}: expected KEY=VALUE", param_hint="--label")
        labels[key] = text
    return labels


def _show(view: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(view)
        return
    rows = [[k, json.dumps(v) if isinstance(v, dict) else str(v)] for k, v in view.items()]
    print_table(("field", "value"), rows, wrap=("value",))


@schedules_app.command("add")
def schedules_add(
    tenant: Tenant,
    name: Annotated[str, typer.Option(help="A name for people.")],
    cron: Annotated[str, typer.Option(help="5 cron fields, read in UTC, e.g. '*/15 * * * *'.")],
    kind: Annotated[str, typer.Option(help="Job kind of each run.")],
    params: Annotated[
        str, typer.Option(help="Kind-specific parameters of each run, as a JSON object.")
    ] = "{}",
    task: Annotated[str | None, typer.Option(help="Task name of each run.")] = None,
    label: Annotated[list[str] | None, typer.Option(help="KEY=VALUE label of each run; repeatable.")] = None,
    priority: Annotated[int, typer.Option(min=0, max=9, help="Priority of each run.")] = 0,
    missed: Annotated[
        str, typer.Option(help="After missed slots: skip, or catch_up_one (one run).")
    ] = "skip",
    paused: Annotated[bool, typer.Option("--paused", help="Create it paused.")] = False,
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """Add a schedule; its first run is due at the first slot after now."""
    from datetime import UTC, datetime

    from pydantic import ValidationError

    from orchestrator.api.schedules import new_schedule, schedule_view
    from orchestrator.services import InvalidRequest
    from orchestrator.store import schedules
    from schemas.schedules import ScheduleCreateRequest

    try:
        parsed_params = json.loads(params)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="--params") from None
    body: dict[str, Any] = {
        "name": name,
        "cron": cron,
        "kind": kind,
        "params": parsed_params,
        "task": task,
        "labels": _labels(label or []),
        "priority": priority,
        "missed": missed,
        "enabled": not paused,
    }
    try:
        new = new_schedule(ScheduleCreateRequest.model_validate(body))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise CliError(problems) from None
    except InvalidRequest as exc:
        raise CliError("; ".join(f"{e['loc'][-1]}: {e['msg']}" for e in exc.errors)) from None
    settings = migrated_settings(data_dir)
    with engine_for(settings).begin() as conn:
        record = schedules.create(conn, tenant, new, datetime.now(UTC), ACTOR)
    err.print(f"schedule {record.id} added")
    _show(schedule_view(record).model_dump(mode="json"), as_json)


@schedules_app.command("list")
def schedules_list(tenant: Tenant, data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """The tenant's schedules, newest first."""
    from orchestrator.api.schedules import schedule_view
    from orchestrator.store import schedules

    settings = migrated_settings(data_dir)
    with engine_for(settings).connect() as conn:
        found = [schedule_view(r).model_dump(mode="json") for r in schedules.list_for(conn, tenant)]
    if as_json:
        print_json(found)
        return
    columns = ("id", "name", "cron", "kind", "missed", "enabled", "next_due_at")
    print_table(columns, [[str(view[c]) for c in columns] for view in found], wrap=("name",))


@schedules_app.command("show")
def schedules_show(
    schedule_id: ScheduleId, tenant: Tenant, data_dir: DataDir = None, as_json: AsJson = False
) -> None:
    """One schedule."""
    from orchestrator.api.schedules import schedule_view
    from orchestrator.store import schedules

    settings = migrated_settings(data_dir)
    with engine_for(settings).connect() as conn:
        record = schedules.get(conn, tenant, schedule_id)
    if record is None:
        raise CliError(f"tenant {tenant!r} has no schedule {schedule_id}")
    _show(schedule_view(record).model_dump(mode="json"), as_json)


def _set_enabled(schedule_id: UUID, tenant: str, enabled: bool, data_dir: Any, as_json: bool) -> None:
    from datetime import UTC, datetime

    from orchestrator.api.schedules import schedule_view
    from orchestrator.store import schedules

    settings = migrated_settings(data_dir)
    with engine_for(settings).begin() as conn:
        record = schedules.set_enabled(conn, tenant, schedule_id, enabled, datetime.now(UTC), ACTOR)
    if record is None:
        raise CliError(f"tenant {tenant!r} has no schedule {schedule_id}")
    _show(schedule_view(record).model_dump(mode="json"), as_json)


@schedules_app.command("pause")
def schedules_pause(
    schedule_id: ScheduleId, tenant: Tenant, data_dir: DataDir = None, as_json: AsJson = False
) -> None:
    """Stop firing until resumed."""
    _set_enabled(schedule_id, tenant, False, data_dir, as_json)


@schedules_app.command("resume")
def schedules_resume(
    schedule_id: ScheduleId, tenant: Tenant, data_dir: DataDir = None, as_json: AsJson = False
) -> None:
    """Fire again, from the first slot after now (slots passed while paused are not run)."""
    _set_enabled(schedule_id, tenant, True, data_dir, as_json)


@schedules_app.command("rm")
def schedules_rm(schedule_id: ScheduleId, tenant: Tenant, data_dir: DataDir = None) -> None:
    """Remove the schedule; runs it fired stay."""
    from orchestrator.store import schedules

    settings = migrated_settings(data_dir)
    with engine_for(settings).begin() as conn:
        deleted = schedules.delete(conn, tenant, schedule_id, ACTOR)
    if not deleted:
        raise CliError(f"tenant {tenant!r} has no schedule {schedule_id}")
    err.print(f"schedule {schedule_id} removed")
