"""`orchestrator keys ...`: create, list and revoke API keys in the database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from orchestrator.cli.common import DataDir, engine_for, err, migrated_settings
from orchestrator.cli.output import print_json, print_table

if TYPE_CHECKING:
    from orchestrator.store.keys import KeyRecord

keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


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
    settings = migrated_settings(data_dir)
    with engine_for(settings).begin() as conn:
        key, record = keys.create(conn, tenant, name, tuple(grant or ()))
    err.print(f"created key {record.prefix}… (id {record.id}) for tenant {tenant!r}; it is shown only once")
    print(key)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="Key id or its display prefix.")], data_dir: DataDir = None
) -> None:
    """Revoke a key; it is refused from its next request on."""
    from orchestrator.store import keys

    settings = migrated_settings(data_dir)
    with engine_for(settings).begin() as conn:
        count = keys.revoke(conn, key_id)
    if not count:
        err.print("no active key matches")
        raise typer.Exit(1)
    err.print(f"revoked {count} key(s)")


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    data_dir: DataDir = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")
    ] = False,
) -> None:
    """List keys (prefixes only; keys themselves are never stored)."""
    from orchestrator.store import keys

    settings = migrated_settings(data_dir)
    with engine_for(settings).connect() as conn:
        records = keys.list_keys(conn, tenant)
    if as_json:
        print_json([_as_dict(r) for r in records])
        return
    rows = [
        [
            str(r.id),
            r.tenant_id,
            ",".join(r.grants),
            r.prefix,
            r.name or "",
            _when(r.created_at),
            _when(r.revoked_at),
        ]
        for r in records
    ]
    print_table(
        ("id", "tenant", "grants", "prefix", "name", "created (UTC)", "revoked"), rows, wrap=("name",)
    )


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _as_dict(record: KeyRecord) -> dict[str, object]:
    return {
        "id": str(record.id),
        "tenant_id": record.tenant_id,
        "grants": list(record.grants),
        "prefix": record.prefix,
        "name": record.name,
        "created_at": record.created_at.isoformat(),
        "revoked_at": record.revoked_at.isoformat() if record.revoked_at else None,
    }
