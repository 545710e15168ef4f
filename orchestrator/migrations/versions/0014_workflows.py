"""Workflow documents, and the index that finds parked runs.

A workflow document is versioned JSON: `workflows` holds one row per document (its title and latest
version number), `workflow_versions` one row per version, never rewritten, so a run that captured version
N reads the same steps forever. Plain tenant tables, not event streams; row-level security as on every
tenant table, in the init-plan form of 0008.

Steps get the `tool_call_id` their StepStarted event may carry. The partial index on `RunParked` events
serves the reconciler's safety net, which looks for parked runs whose children have all ended.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

APP_ROLE = "orch_app"
_TENANT = "tenant_id = ANY ((SELECT orch_tenants())::text[])"
_SYSTEM = f"(SELECT current_user) <> '{APP_ROLE}'"
_NOW = sa.text("clock_timestamp()")


def _secure(table: str) -> None:
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE}")
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} TO {APP_ROLE} USING ({_TENANT}) WITH CHECK ({_TENANT})"
    )
    op.execute(f"CREATE POLICY system_roles ON {table} USING ({_SYSTEM}) WITH CHECK ({_SYSTEM})")


def upgrade() -> None:
    op.create_table(
        "workflows",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("latest_version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
    )
    op.create_index(
        "workflows_tenant_created_idx",
        "workflows",
        ["tenant_id", sa.text("created_at DESC"), sa.text("id DESC")],
    )
    op.create_table(
        "workflow_versions",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("workflow_id", UUID(as_uuid=True), sa.ForeignKey("workflows.id"), nullable=False),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("label", sa.Text),
        sa.Column("document", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.UniqueConstraint("workflow_id", "version", name="workflow_versions_workflow_version_key"),
    )
    _secure("workflows")
    _secure("workflow_versions")
    op.add_column("run_steps", sa.Column("tool_call_id", sa.Text))
    op.execute("CREATE INDEX events_parked_idx ON events (stream_id, version) WHERE type = 'RunParked'")


def downgrade() -> None:
    op.execute("DROP INDEX events_parked_idx")
    op.drop_column("run_steps", "tool_call_id")
    op.drop_table("workflow_versions")
    op.drop_table("workflows")
