"""Wake-ups at commit come from the database itself: one statement-level trigger per table sends the NOTIFY
that appends and outbox writes used to send as an extra statement each (a round trip per write saved).

Payloads are unchanged: `orch_events` carries "stream_id:last position" per stream written, `orch_outbox`
an outbox row id. NOTIFY is delivered at commit and dropped on rollback, as before.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION orch_notify_events() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('orch_events', stream_id::text || ':' || max(position)::text)
            FROM written GROUP BY stream_id;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER events_notify AFTER INSERT ON events REFERENCING NEW TABLE AS written "
        "FOR EACH STATEMENT EXECUTE FUNCTION orch_notify_events()"
    )
    op.execute(
        """
        CREATE FUNCTION orch_notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('orch_outbox', max(id)::text) FROM written;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox REFERENCING NEW TABLE AS written "
        "FOR EACH STATEMENT EXECUTE FUNCTION orch_notify_outbox()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS outbox_notify ON outbox")
    op.execute("DROP FUNCTION IF EXISTS orch_notify_outbox()")
    op.execute("DROP TRIGGER IF EXISTS events_notify ON events")
    op.execute("DROP FUNCTION IF EXISTS orch_notify_events()")
