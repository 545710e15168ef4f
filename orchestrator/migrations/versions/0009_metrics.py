"""An index for `/metrics`: lost attempts are counted from the log at every scrape, and a partial index on
just those events makes that count read a few index entries instead of the whole log.

Revision ID: 0009_metrics
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0009_metrics"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX events_attempt_lost_idx ON events (position) WHERE type = 'AttemptLost'")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS events_attempt_lost_idx")
