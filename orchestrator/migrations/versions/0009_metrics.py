"""What `/metrics` reads, so that a scrape costs a few small reads however long the history is.

- `run_started` (runs per tenant and kind that ever started) and `run_latency` (queue-wait and duration
  histograms per kind: count and sum per bucket bound), kept by the runs projection beside `run_counts`
  (orchestrator/projections/run_metrics.py). Filled here from the rows the projection has written so far,
  with the bounds of that module at the time of writing.
- A partial index on `AttemptLost` events, so counting lost attempts reads a few index entries.

Row-level security on `run_started` as on every tenant table (0003, in the init-plan form of 0008);
`run_latency` names no tenant.

Revision ID: 0009_metrics
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_metrics"
down_revision = "0008"
branch_labels = None
depends_on = None

APP_ROLE = "orch_app"
_BOUNDS = {
    "queue_wait": "0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800",
    "duration": "0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400",
}


def upgrade() -> None:
    op.execute("CREATE INDEX events_attempt_lost_idx ON events (position) WHERE type = 'AttemptLost'")
    op.create_table(
        "run_started",
        sa.Column("tenant_id", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "run_latency",
        sa.Column("kind", sa.Text, primary_key=True),
        sa.Column("metric", sa.Text, primary_key=True),
        sa.Column("le", sa.Float, primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("total", sa.Float, nullable=False),
    )
    op.execute(
        "INSERT INTO run_started (tenant_id, kind, count) "
        "SELECT tenant_id, kind, count(*) FROM runs WHERE started_at IS NOT NULL GROUP BY 1, 2"
    )
    for metric, since, until in (
        ("queue_wait", "created_at", "started_at"),
        ("duration", "started_at", "finished_at"),
    ):
        seconds = f"greatest(0, extract(epoch FROM {until} - {since}))::float8"
        op.execute(
            f"""
            INSERT INTO run_latency (kind, metric, le, count, total)
            SELECT kind, '{metric}', le, count(*), sum(seconds)
            FROM (SELECT kind, {seconds} AS seconds FROM runs
                  WHERE started_at IS NOT NULL AND {until} IS NOT NULL) AS observed,
                 LATERAL (SELECT coalesce(min(bound), 'Infinity'::float8) AS le
                          FROM unnest(ARRAY[{_BOUNDS[metric]}]::float8[]) AS bound
                          WHERE seconds <= bound) AS filed
            GROUP BY 1, 3
            """
        )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON run_started, run_latency TO {APP_ROLE}")
    op.execute("ALTER TABLE run_started ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE run_started FORCE ROW LEVEL SECURITY")
    tenant = "tenant_id = ANY ((SELECT orch_tenants())::text[])"
    system = f"(SELECT current_user) <> '{APP_ROLE}'"
    op.execute(
        f"CREATE POLICY tenant_isolation ON run_started TO {APP_ROLE} USING ({tenant}) WITH CHECK ({tenant})"
    )
    op.execute(f"CREATE POLICY system_roles ON run_started USING ({system}) WITH CHECK ({system})")


def downgrade() -> None:
    op.drop_table("run_latency")
    op.drop_table("run_started")
    op.execute("DROP INDEX IF EXISTS events_attempt_lost_idx")
