"""Index sent outbox rows: the reconciler looks for stalled dispatches and prunes finished ones by it.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("outbox_sent_idx", "outbox", ["sent_at"], postgresql_where=sa.text("sent_at IS NOT NULL"))
    op.create_index("outbox_run_attempt_idx", "outbox", ["run_id", "attempt"])


def downgrade() -> None:
    op.drop_index("outbox_run_attempt_idx", "outbox")
    op.drop_index("outbox_sent_idx", "outbox")
