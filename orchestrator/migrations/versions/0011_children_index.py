"""The children of a run, found on the write side: a partial expression index on RunCreated's parent_id.

A cancel cascades to every live descendant (orchestrator/store/children.py) and must not depend on the
projector being caught up, so it reads the log; this index makes each level one index scan.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX events_children_idx ON events ((data ->> 'parent_id')) "
        "WHERE type = 'RunCreated' AND data ->> 'parent_id' IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX events_children_idx")
