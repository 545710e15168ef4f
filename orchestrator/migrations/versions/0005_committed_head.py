"""`orch_committed_head()`: the position up to which every event is committed, for whole-log readers.

Appends no longer take turns: each holds the append advisory lock in SHARED mode from its INSERT to its
COMMIT, so writers on different streams run (and group-commit) together. A reader of the whole log calls
this function, which takes the same lock EXCLUSIVELY for an instant: that waits until every append in
flight has committed or rolled back, reads the highest position, and lets the writers go on. Any append
that starts after it gets a higher position, so every event at or below the answer is already visible,
and a reader that stops there and checkpoints by position never skips a late commit.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

APPEND_LOCK_KEY = 0x6F7263685F617070  # orchestrator.store.events.APPEND_LOCK_KEY, frozen here


def upgrade() -> None:
    op.execute(
        f"""
        CREATE FUNCTION orch_committed_head() RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
        DECLARE
            head bigint;
        BEGIN
            -- Under REPEATABLE READ the max below would come from a snapshot older than the wait.
            IF current_setting('transaction_isolation') <> 'read committed' THEN
                RAISE EXCEPTION 'orch_committed_head() needs READ COMMITTED';
            END IF;
            -- A session lock, released at once: a reader never holds up writers beyond this function.
            PERFORM pg_advisory_lock({APPEND_LOCK_KEY});
            BEGIN
                SELECT coalesce(max(position), 0) INTO head FROM events;
            EXCEPTION WHEN OTHERS THEN
                PERFORM pg_advisory_unlock({APPEND_LOCK_KEY});
                RAISE;
            END;
            PERFORM pg_advisory_unlock({APPEND_LOCK_KEY});
            RETURN head;
        END $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS orch_committed_head()")
