"""Features: a tenant's datasets of lines (JSONL or CSV) in object storage, named by URL.

A plain tenant table, not an event stream: a feature is registered once and read by the runs started on
it, which copy what they need (its URL and format) into their own parameters when they are created, so
the log alone still explains every run. Row-level security as on every tenant table (0003), in the
init-plan form of 0008.

Revision ID: 0010
Revises: 0009_metrics
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0010"
down_revision = "0009_metrics"
branch_labels = None
depends_on = None

APP_ROLE = "orch_app"


def upgrade() -> None:
    op.create_table(
        "features",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("format", sa.Text, nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("clock_timestamp()"),
        ),
        sa.CheckConstraint("format IN ('jsonl', 'csv')", name="features_format_check"),
    )
    op.create_index(
        "features_tenant_created_idx",
        "features",
        ["tenant_id", sa.text("created_at DESC"), sa.text("id DESC")],
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON features TO {APP_ROLE}")
    op.execute("ALTER TABLE features ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE features FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON features TO {APP_ROLE} "
        "USING (tenant_id = ANY ((SELECT orch_tenants())::text[])) "
        "WITH CHECK (tenant_id = ANY ((SELECT orch_tenants())::text[]))"
    )
    op.execute(
        "CREATE POLICY system_roles ON features "
        f"USING ((SELECT current_user) <> '{APP_ROLE}') WITH CHECK ((SELECT current_user) <> '{APP_ROLE}')"
    )


def downgrade() -> None:
    op.drop_table("features")
