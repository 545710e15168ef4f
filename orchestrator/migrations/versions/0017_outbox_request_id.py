"""Outbox rows carry the id of the API request that created their run, so the relay can put it in the
Celery message and the worker's logs and events name the request (orchestrator.correlation).

Nullable and without a default: rows written before this, and runs submitted outside a request, have none.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("request_id", sa.Text))


def downgrade() -> None:
    op.drop_column("outbox", "request_id")
