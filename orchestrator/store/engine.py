"""Engine construction: one place that turns a user-facing URL into a SQLAlchemy engine."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine


def sqlalchemy_url(url: str) -> str:
    """Accept the usual postgresql:// form and select the psycopg 3 driver."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError("database URL must start with postgresql://")


def libpq_url(url: str) -> str:
    """The same URL for plain psycopg (LISTEN connections)."""
    return "postgresql://" + sqlalchemy_url(url)[len("postgresql+psycopg://") :]


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    return sa.create_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        # No ping on every checkout (a round trip per transaction): a connection that died is detected
        # by its first statement, which invalidates the whole pool; callers retry (workers, roles) or
        # answer 503 once (the API).
        pool_pre_ping=False,
        pool_recycle=1800,
    )
