"""Run history at scale: a retry's link to the run it retries, and the index retention sweeps by.

`runs.retry_of` comes from RunCreated's `retry_of` (an event field added with a default, so older events
read as no retry). Existing rows get NULL, which is what a rebuild gives them too. The partial index on
finished roots lets a retention pass find a tenant's oldest finished run trees without scanning live runs.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("retry_of", UUID(as_uuid=True)))
    op.create_index(
        "runs_retry_of_idx", "runs", ["retry_of"], postgresql_where=sa.text("retry_of IS NOT NULL")
    )
    op.create_index(
        "runs_tenant_finished_roots_idx",
        "runs",
        ["tenant_id", "finished_at"],
        postgresql_where=sa.text("parent_id IS NULL AND finished_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("runs_tenant_finished_roots_idx", "runs")
    op.drop_index("runs_retry_of_idx", "runs")
    op.drop_column("runs", "retry_of")
