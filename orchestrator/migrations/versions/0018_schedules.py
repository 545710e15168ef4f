"""Recurring schedules: the read model of each schedule's event stream, and the index the scheduler finds
due schedules by. A plain tenant table with row-level security, in the init-plan form of 0008.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

APP_ROLE = "orch_app"
_TENANT = "tenant_id = ANY ((SELECT orch_tenants())::text[])"
_SYSTEM = f"(SELECT current_user) <> '{APP_ROLE}'"
_NOW = sa.text("clock_timestamp()")


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("cron", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("params", JSONB, nullable=False),
        sa.Column("task", sa.Text),
        sa.Column("labels", JSONB, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("missed", sa.Text, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("next_due_at", sa.DateTime(timezone=True)),
        sa.Column("last_fired_at", sa.DateTime(timezone=True)),
        sa.Column("last_run_id", UUID(as_uuid=True)),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.CheckConstraint("missed IN ('skip', 'catch_up_one')", name="schedules_missed_check"),
    )
    op.create_index(
        "schedules_tenant_created_idx",
        "schedules",
        ["tenant_id", sa.text("created_at DESC"), sa.text("id DESC")],
    )
    op.create_index("schedules_due_idx", "schedules", ["next_due_at"], postgresql_where=sa.text("enabled"))
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON schedules TO {APP_ROLE}")
    op.execute("ALTER TABLE schedules ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE schedules FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON schedules TO {APP_ROLE} USING ({_TENANT}) WITH CHECK ({_TENANT})"
    )
    op.execute(f"CREATE POLICY system_roles ON schedules USING ({_SYSTEM}) WITH CHECK ({_SYSTEM})")


def downgrade() -> None:
    op.drop_table("schedules")
