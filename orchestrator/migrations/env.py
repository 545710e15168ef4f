"""Alembic environment: the URL comes from the caller (orchestrator migrate), never from a file."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from orchestrator.store.engine import make_engine
from orchestrator.store.schema import metadata

# Several roles may start at once and each runs `migrate`; the lock makes them take turns.
MIGRATION_LOCK_KEY = 0x6F7263685F6D6967


def run_migrations_online() -> None:
    url = context.config.attributes.get("url") or context.config.get_main_option("sqlalchemy.url")
    engine = make_engine(str(url), pool_size=1)
    with engine.connect() as conn:
        conn.execute(sa.select(sa.func.pg_advisory_lock(MIGRATION_LOCK_KEY)))
        conn.commit()
        try:
            context.configure(connection=conn, target_metadata=metadata)
            with context.begin_transaction():
                context.run_migrations()
            conn.commit()
        finally:
            conn.execute(sa.select(sa.func.pg_advisory_unlock(MIGRATION_LOCK_KEY)))
            conn.commit()
    engine.dispose()


run_migrations_online()
