"""What the public surfaces need: run attributes and usage, a steps read model, multi-tenant keys.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

USAGE_COLUMNS = (
    "usage_input_tokens",
    "usage_output_tokens",
    "usage_cached_input_tokens",
    "usage_cache_write_tokens",
)


def upgrade() -> None:
    op.add_column(
        "runs", sa.Column("attributes", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb"))
    )
    for name in USAGE_COLUMNS:
        op.add_column("runs", sa.Column(name, sa.BigInteger, nullable=False, server_default="0"))
    op.add_column("runs", sa.Column("usage_cost", sa.Numeric, nullable=False, server_default="0"))
    op.add_column(
        "api_keys",
        sa.Column("grants", ARRAY(sa.Text), nullable=False, server_default=sa.text("'{}'::text[]")),
    )
    op.create_table(
        "run_steps",
        sa.Column("run_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("attempt", sa.Integer, primary_key=True),
        sa.Column("sequence", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("step_key", sa.Text, nullable=False),
        sa.Column("tool_name", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("input", JSONB, nullable=False),
        sa.Column("output", JSONB),
        sa.Column("error", sa.Text),
        sa.Column("duration_ms", sa.Integer),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
    )
    # Surface filters on creation attributes (task, workflow document, thread, taxonomy field).
    op.create_index("runs_attributes_idx", "runs", ["attributes"], postgresql_using="gin")


def downgrade() -> None:
    op.drop_index("runs_attributes_idx", "runs")
    op.drop_table("run_steps")
    op.drop_column("api_keys", "grants")
    for name in (*USAGE_COLUMNS, "usage_cost", "attributes"):
        op.drop_column("runs", name)
