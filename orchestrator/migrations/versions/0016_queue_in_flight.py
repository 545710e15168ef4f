"""Fair dispatch by default: a dispatch slot records its queue, so the relay can cap each queue's runs in
flight (published and not finished) without mapping kinds to queue names, which differ per deployment.

Slots held when this runs take their queue from the run's newest sent outbox row; a slot whose row was
pruned keeps '' and counts toward no queue's cap until its run ends.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("dispatch_slots", sa.Column("queue", sa.Text, nullable=False, server_default=""))
    op.execute(
        """
        UPDATE dispatch_slots s SET queue = o.queue
        FROM (SELECT DISTINCT ON (run_id) run_id, queue FROM outbox ORDER BY run_id, id DESC) o
        WHERE o.run_id = s.run_id
        """
    )


def downgrade() -> None:
    op.drop_column("dispatch_slots", "queue")
