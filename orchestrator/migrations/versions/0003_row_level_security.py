"""Row-level security as the second wall behind the tenant filters of every query.

The API switches each transaction to the non-owner role `orch_app` with the caller's tenants in
`orch.tenants` (orchestrator/store/tenancy.py); under that role a tenant table shows only those
tenants' rows, and none at all when the setting is missing. The system roles (relay, projector,
reconciler, workers) work across tenants under the owning role. FORCE makes the policies apply to
the table owner too, so only the explicit system policy lets it through.

The migrating role needs CREATEROLE the first time (or `orch_app` must already exist).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

APP_ROLE = "orch_app"
TENANT_TABLES = ("events", "runs", "run_steps", "outbox", "idempotency_keys", "run_leases")


def upgrade() -> None:
    # Roles are cluster-wide and several databases may migrate at once: tolerate the race.
    op.execute(
        f"""
        DO $$ BEGIN
            CREATE ROLE {APP_ROLE} NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END $$;
        """
    )
    op.execute(f"GRANT {APP_ROLE} TO CURRENT_USER")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}")
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}")
    defaults = "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT"
    op.execute(f"{defaults} SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE}")
    op.execute(f"{defaults} USAGE, SELECT ON SEQUENCES TO {APP_ROLE}")
    op.execute(
        """
        CREATE FUNCTION orch_tenants() RETURNS text[] LANGUAGE sql STABLE AS $$
            SELECT coalesce(
                ARRAY(SELECT jsonb_array_elements_text(
                    nullif(current_setting('orch.tenants', true), '')::jsonb)),
                '{}'::text[])
        $$
        """
    )
    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} TO {APP_ROLE} "
            "USING (tenant_id = ANY (orch_tenants())) WITH CHECK (tenant_id = ANY (orch_tenants()))"
        )
        op.execute(
            f"CREATE POLICY system_roles ON {table} "
            f"USING (current_user <> '{APP_ROLE}') WITH CHECK (current_user <> '{APP_ROLE}')"
        )


def downgrade() -> None:
    for table in TENANT_TABLES:
        op.execute(f"DROP POLICY IF EXISTS system_roles ON {table}")
        op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.execute("DROP FUNCTION IF EXISTS orch_tenants()")
