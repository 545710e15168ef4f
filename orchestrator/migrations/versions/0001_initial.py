"""Event log, outbox, keys, idempotency keys, leases, checkpoints and the runs read model.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

NOW = sa.text("clock_timestamp()")


def _ts(name: str, nullable: bool = True, now: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, server_default=NOW if now else None)


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("position", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
        sa.Column("stream_id", UUID(as_uuid=True), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("data", JSONB, nullable=False),
        sa.Column("metadata", JSONB, nullable=False),
        _ts("recorded_at", nullable=False, now=True),
        sa.UniqueConstraint("stream_id", "version", name="events_stream_version_key"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("run_id", UUID(as_uuid=True), nullable=False),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("queue", sa.Text, nullable=False),
        _ts("not_before", nullable=False, now=True),
        _ts("created_at", nullable=False, now=True),
        _ts("sent_at"),
    )
    op.create_index(
        "outbox_unsent_idx", "outbox", ["not_before", "id"], postgresql_where=sa.text("sent_at IS NULL")
    )
    op.create_index("outbox_run_idx", "outbox", ["run_id"])
    op.create_table(
        "api_keys",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("digest", sa.Text, nullable=False, unique=True),
        sa.Column("prefix", sa.Text, nullable=False),
        sa.Column("name", sa.Text),
        _ts("created_at", nullable=False, now=True),
        _ts("revoked_at"),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("tenant_id", sa.Text, primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("request_hash", sa.Text, nullable=False),
        sa.Column("run_id", UUID(as_uuid=True), nullable=False),
        _ts("created_at", nullable=False, now=True),
    )
    op.create_table(
        "run_leases",
        sa.Column("run_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("worker", sa.Text, nullable=False),
        _ts("expires_at", nullable=False),
    )
    op.create_index("run_leases_expires_idx", "run_leases", ["expires_at"])
    op.create_table(
        "projection_checkpoints",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        _ts("updated_at", nullable=False, now=True),
    )
    op.create_table(
        "runs",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("task", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("error_code", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("parent_id", UUID(as_uuid=True)),
        sa.Column("root_id", UUID(as_uuid=True), nullable=False),
        sa.Column("depth", sa.Integer, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        _ts("retry_at"),
        sa.Column("progress_done", sa.Integer, nullable=False),
        sa.Column("progress_total", sa.Integer),
        sa.Column("counts", JSONB, nullable=False),
        sa.Column("params", JSONB, nullable=False),
        sa.Column("labels", JSONB, nullable=False),
        sa.Column("metrics", JSONB, nullable=False),
        sa.Column("result", JSONB),
        sa.Column("event_count", sa.Integer, nullable=False),
        sa.Column("last_position", sa.BigInteger, nullable=False),
        _ts("created_at", nullable=False),
        _ts("started_at"),
        _ts("finished_at"),
        _ts("updated_at", nullable=False),
    )
    desc = (sa.text("created_at DESC"), sa.text("id DESC"))
    op.create_index("runs_tenant_created_idx", "runs", ["tenant_id", *desc])
    op.create_index("runs_tenant_status_created_idx", "runs", ["tenant_id", "status", *desc])
    op.create_index("runs_tenant_kind_created_idx", "runs", ["tenant_id", "kind", *desc])
    op.create_index("runs_tenant_parent_idx", "runs", ["tenant_id", "parent_id"])
    op.create_index("runs_root_idx", "runs", ["root_id"])


def downgrade() -> None:
    for table in (
        "runs",
        "projection_checkpoints",
        "run_leases",
        "idempotency_keys",
        "api_keys",
        "outbox",
        "events",
    ):
        op.drop_table(table)
