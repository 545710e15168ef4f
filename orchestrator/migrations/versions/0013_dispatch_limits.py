"""Fair dispatch, per-tenant limits, priorities and delayed runs (issue 16).

- `outbox` rows carry the run's `kind` and `priority`, and an index that lets the relay take each
  (tenant, kind)'s due rows in priority order without reading the others'.
- `dispatch_slots`: one row per run that is dispatched and not finished (published, running, or waiting
  in the broker). The relay counts them against `tenant_limits` before it publishes more of a tenant.
- `tenant_limits`: a tenant's override of the default running limit (kind '' = all its kinds) and its
  per-kind limits.
- `runs` shows a run's `priority` and `not_before`, folded from RunCreated like every other column.

Both new tables are tenant tables under row-level security, with the init-plan policies of 0008.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

APP_ROLE = "orch_app"
TABLES = ("dispatch_slots", "tenant_limits")
NOW = sa.text("clock_timestamp()")
_TENANT = "tenant_id = ANY ((SELECT orch_tenants())::text[])"
_SYSTEM = f"(SELECT current_user) <> '{APP_ROLE}'"


def upgrade() -> None:
    op.add_column("outbox", sa.Column("kind", sa.Text, nullable=False, server_default=""))
    op.add_column("outbox", sa.Column("priority", sa.SmallInteger, nullable=False, server_default="0"))
    op.create_index(
        "outbox_tenant_due_idx",
        "outbox",
        ["tenant_id", "kind", sa.text("priority DESC"), "not_before", "id"],
        postgresql_where=sa.text("sent_at IS NULL"),
    )
    op.add_column("runs", sa.Column("priority", sa.SmallInteger, nullable=False, server_default="0"))
    op.add_column("runs", sa.Column("not_before", sa.DateTime(timezone=True)))
    op.create_table(
        "dispatch_slots",
        sa.Column("run_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("held_since", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Index("dispatch_slots_tenant_idx", "tenant_id", "kind"),
    )
    op.create_table(
        "tenant_limits",
        sa.Column("tenant_id", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, primary_key=True),
        sa.Column("max_running", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.CheckConstraint("max_running >= 0", name="tenant_limits_max_running_check"),
    )
    for table in TABLES:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE}")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} TO {APP_ROLE} "
            f"USING ({_TENANT}) WITH CHECK ({_TENANT})"
        )
        op.execute(f"CREATE POLICY system_roles ON {table} USING ({_SYSTEM}) WITH CHECK ({_SYSTEM})")


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
    op.drop_column("runs", "not_before")
    op.drop_column("runs", "priority")
    op.drop_index("outbox_tenant_due_idx", "outbox")
    op.drop_column("outbox", "priority")
    op.drop_column("outbox", "kind")
