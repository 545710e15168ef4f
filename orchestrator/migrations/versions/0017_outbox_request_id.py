"""Outbox rows carry the id of the API request that created their run, so the relay can put it in the
Celery message and the worker's logs and events name the request (orchestrator.correlation).

With tracing on (orchestrator.tracing) they carry the request span's context as well, `trace_context`
(W3C headers), so the worker's attempt span is its child.

Nullable and without a default: rows written before this, and runs submitted outside a request, have none.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("request_id", sa.Text))
    op.add_column("outbox", sa.Column("trace_context", JSONB))


def downgrade() -> None:
    op.drop_column("outbox", "trace_context")
    op.drop_column("outbox", "request_id")
