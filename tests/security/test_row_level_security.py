"""Row-level security fails closed (S2): as the application role with no tenant set, no tenant table
shows a row; every table with a tenant column is FORCE'd and has a policy."""

from __future__ import annotations

import json
import uuid

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from orchestrator.services import RunService, SubmitRequest
from orchestrator.store import tenancy
from orchestrator.store.tenancy import APP_ROLE


def _tenant_tables(conn: sa.Connection) -> list[str]:
    return list(
        conn.execute(
            sa.text(
                "SELECT table_name FROM information_schema.columns "
                "WHERE table_schema = 'public' AND column_name = 'tenant_id' AND table_name <> 'api_keys'"
            )
        ).scalars()
    )


def test_every_tenant_table_forces_a_policy(engine: Engine) -> None:
    with engine.connect() as conn:
        tables = _tenant_tables(conn)
        assert {"events", "runs", "run_steps", "outbox", "idempotency_keys", "run_leases"} <= set(tables)
        for table in tables:
            row = conn.execute(
                sa.text(
                    "SELECT c.relrowsecurity, c.relforcerowsecurity, "
                    "(SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) "
                    "FROM pg_class c WHERE c.relname = :t AND c.relnamespace = 'public'::regnamespace"
                ),
                {"t": table},
            ).one()
            assert row == (True, True, 2), f"{table}: RLS {row}"


def test_the_app_role_sees_nothing_without_a_tenant_and_only_its_own_with_one(
    engine: Engine, service: RunService
) -> None:
    tenant = f"rls-{uuid.uuid4().hex[:8]}"
    run = service.submit(SubmitRequest(tenant_id=tenant, kind="sleep", params={"duration": 60}))
    with engine.connect() as conn:
        tables = _tenant_tables(conn)
        assert conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one() > 0
    with engine.begin() as conn:
        conn.exec_driver_sql(f"SET LOCAL ROLE {APP_ROLE}")
        for table in tables:
            assert conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one() == 0, table
    with engine.begin() as conn:
        conn.exec_driver_sql(f"SET LOCAL ROLE {APP_ROLE}")
        conn.execute(sa.select(sa.func.set_config("orch.tenants", json.dumps([tenant]), True)))
        assert conn.execute(sa.text("SELECT DISTINCT tenant_id FROM events")).scalars().all() == [tenant]
        own = conn.execute(sa.text("SELECT count(*) FROM outbox WHERE run_id = :r"), {"r": run.run_id})
        assert own.scalar_one() == 1
    moved = True
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"SET LOCAL ROLE {APP_ROLE}")
            conn.execute(sa.select(sa.func.set_config("orch.tenants", json.dumps([tenant]), True)))
            conn.execute(
                sa.text("UPDATE outbox SET tenant_id = 'someone-else' WHERE run_id = :r"), {"r": run.run_id}
            )
    except sa.exc.ProgrammingError:
        moved = False
    assert not moved, "a row cannot be moved to another tenant"


def test_api_transactions_run_as_the_app_role(engine: Engine) -> None:
    tenancy.install(engine)
    token = tenancy.current_tenants.set(("some-tenant",))
    try:
        with engine.connect() as conn:
            role, tenants = conn.execute(
                sa.text("SELECT current_user, current_setting('orch.tenants')")
            ).one()
    finally:
        tenancy.current_tenants.reset(token)
    assert (role, json.loads(tenants)) == (APP_ROLE, ["some-tenant"])
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT current_user")).scalar_one() != APP_ROLE
