"""`orchestrator limits ...`: a tenant's running limits, set and shown in the database."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli.common import DataDir, engine_for, err, migrated_settings
from orchestrator.cli.output import print_json, print_table

limits_app = typer.Typer(help="Set and show tenants' running limits.", no_args_is_help=True)

Tenant = Annotated[str, typer.Option(help="The tenant whose limits these are.", min=1)]


def _parse_kinds(values: list[str]) -> dict[str, int]:
    """`KIND=N` pairs, checked as the API checks them (a known kind, N >= 1)."""
    from schemas.limits import MAX_LIMIT, known_kind

    per_kind: dict[str, int] = {}
    for value in values:
        kind, sep, number = value.partition("=")
        try:
            if not sep:
                raise ValueError("expected KIND=N")
            limit = int(number)
            if not 1 <= limit <= MAX_LIMIT:
                raise ValueError(f"N must be 1-{MAX_LIMIT}")
            per_kind[known_kind(kind)] = limit
        except ValueError as exc:
            raise typer.BadParameter(f"{value!r}: {exc}", param_hint="--kind") from None
    return per_kind


@limits_app.command("set")
def limits_set(
    tenant: Tenant,
    max_running: Annotated[
        int | None,
        typer.Option(
            min=0, max=1_000_000, help="Running runs of all kinds; 0 is unlimited. Unset: the default."
        ),
    ] = None,
    kind: Annotated[
        list[str] | None, typer.Option(help="KIND=N: at most N running runs of that kind; repeatable.")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Replace the tenant's limits with exactly these (what is not given is removed)."""
    from orchestrator.store import limits

    per_kind = _parse_kinds(kind or [])
    settings = migrated_settings(data_dir)
    with engine_for(settings).begin() as conn:
        limits.replace(conn, tenant, max_running, per_kind)
    err.print(f"limits of tenant {tenant!r} set")
    limits_show(tenant, data_dir)


@limits_app.command("show")
def limits_show(
    tenant: Tenant,
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """The tenant's limits in force and its runs holding a slot now."""
    from orchestrator.readmodel.limits import limits_view

    settings = migrated_settings(data_dir)
    with engine_for(settings).connect() as conn:
        view = limits_view(conn, tenant, settings.tenant_max_running)
    if as_json:
        print_json(view.model_dump(mode="json"))
        return
    total = "unlimited" if view.effective_max_running is None else str(view.effective_max_running)
    source = "own" if view.max_running is not None else "default"
    rows = [["(all kinds)", f"{total} ({source})", str(sum(view.running.values()))]]
    rows += [[k, str(n), str(view.running.get(k, 0))] for k, n in view.per_kind.items()]
    print_table(("kind", "max running", "running"), rows)
