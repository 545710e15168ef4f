"""What `/metrics` reads, kept so that a scrape costs a few small reads however long the history is.

- `run_stats`: runs per (tenant, kind, status, started at least once), and `run_latency`: queue-wait and
  duration histograms per kind (count and sum per bucket bound), both kept by triggers on the `runs` read
  model. So they change in the projector's own transaction and always equal an aggregate of `runs` (a
  rebuild deletes and re-inserts the rows, and the counts follow), and every API replica reads the same.
  Row triggers on insert and update, which fire only when the status or a timestamp changed (progress
  updates cost nothing); a statement trigger for deletes, so a rebuild's DELETE is one aggregate.
- A partial index on `AttemptLost` events, so counting lost attempts reads a few index entries.

The histogram bounds live in `orch_latency_le` and in `orchestrator/metrics/snapshot.py`; an integration
test holds them equal.

Revision ID: 0009_metrics
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0009_metrics"
down_revision = "0006"
branch_labels = None
depends_on = None

APP_ROLE = "orch_app"
QUEUE_WAIT_BOUNDS = "0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800"
DURATION_BOUNDS = "0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400"

# The contribution of a set of `runs` rows (`source`, with a `sign` column), added to both tables.
_ADD = """
    INSERT INTO run_stats (tenant_id, kind, status, started, n)
    SELECT tenant_id, kind, status, started_at IS NOT NULL, sum(sign) FROM {source}
    GROUP BY 1, 2, 3, 4 HAVING sum(sign) <> 0
    ON CONFLICT (tenant_id, kind, status, started) DO UPDATE SET n = run_stats.n + EXCLUDED.n;
    INSERT INTO run_latency (kind, metric, le, n, total)
    SELECT kind, m.metric, orch_latency_le(m.metric, m.seconds), sum(sign), sum(sign * m.seconds)
    FROM {source},
         LATERAL (VALUES ('queue_wait', extract(epoch FROM started_at - created_at)::float8),
                         ('duration', extract(epoch FROM finished_at - started_at)::float8))
             AS m(metric, seconds)
    WHERE m.seconds IS NOT NULL
    GROUP BY 1, 2, 3 HAVING sum(sign) <> 0
    ON CONFLICT (kind, metric, le) DO UPDATE
        SET n = run_latency.n + EXCLUDED.n, total = run_latency.total + EXCLUDED.total;
"""
_COLUMNS = ("tenant_id", "kind", "status", "created_at", "started_at", "finished_at")


def _rows(*signed: tuple[str, int]) -> str:
    """A `source` of trigger rows: `(("OLD", -1), ("NEW", 1))` is the old row out and the new one in."""
    values = ", ".join(f"({', '.join(f'{row}.{c}' for c in _COLUMNS)}, {sign})" for row, sign in signed)
    return f"(VALUES {values}) AS delta({', '.join(_COLUMNS)}, sign)"


def _table(name: str, sign: int) -> str:
    return f"(SELECT {', '.join(_COLUMNS)}, {sign} AS sign FROM {name}) AS delta"


def upgrade() -> None:
    op.execute("CREATE INDEX events_attempt_lost_idx ON events (position) WHERE type = 'AttemptLost'")
    op.execute(
        """
        CREATE TABLE run_stats (
            tenant_id text NOT NULL,
            kind text NOT NULL,
            status text NOT NULL,
            started boolean NOT NULL,
            n bigint NOT NULL,
            PRIMARY KEY (tenant_id, kind, status, started)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE run_latency (
            kind text NOT NULL,
            metric text NOT NULL,
            le float8 NOT NULL,
            n bigint NOT NULL,
            total float8 NOT NULL,
            PRIMARY KEY (kind, metric, le)
        )
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION orch_latency_le(metric text, seconds float8) RETURNS float8
        LANGUAGE sql IMMUTABLE AS $$
            SELECT coalesce(min(bound), 'Infinity'::float8)
            FROM unnest(CASE metric WHEN 'queue_wait' THEN ARRAY[{QUEUE_WAIT_BOUNDS}]::float8[]
                                    ELSE ARRAY[{DURATION_BOUNDS}]::float8[] END) AS bound
            WHERE seconds <= bound
        $$
        """
    )
    # Row triggers: the old row's contribution out, the new one's in, as one two-row delta.
    op.execute(
        f"""
        CREATE FUNCTION orch_run_stats_row() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'UPDATE' THEN
                {_ADD.format(source=_rows(("OLD", -1), ("NEW", 1)))}
            ELSE
                {_ADD.format(source=_rows(("NEW", 1)))}
            END IF;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION orch_run_stats_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            {_ADD.format(source=_table("deleted_runs", -1))}
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER runs_stats_insert AFTER INSERT ON runs FOR EACH ROW "
        "EXECUTE FUNCTION orch_run_stats_row()"
    )
    op.execute(
        """
        CREATE TRIGGER runs_stats_update AFTER UPDATE ON runs FOR EACH ROW
        WHEN ((OLD.tenant_id, OLD.kind, OLD.status, OLD.created_at, OLD.started_at, OLD.finished_at)
              IS DISTINCT FROM
              (NEW.tenant_id, NEW.kind, NEW.status, NEW.created_at, NEW.started_at, NEW.finished_at))
        EXECUTE FUNCTION orch_run_stats_row()
        """
    )
    op.execute(
        """
        CREATE TRIGGER runs_stats_delete AFTER DELETE ON runs REFERENCING OLD TABLE AS deleted_runs
        FOR EACH STATEMENT EXECUTE FUNCTION orch_run_stats_deleted()
        """
    )
    # The runs already folded.
    op.execute(_ADD.format(source=_table("runs", 1)))
    # run_stats names tenants: the same two walls as the other tenant tables (migration 0003).
    op.execute("ALTER TABLE run_stats ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE run_stats FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON run_stats TO {APP_ROLE} "
        "USING (tenant_id = ANY (orch_tenants())) WITH CHECK (tenant_id = ANY (orch_tenants()))"
    )
    op.execute(
        "CREATE POLICY system_roles ON run_stats "
        f"USING (current_user <> '{APP_ROLE}') WITH CHECK (current_user <> '{APP_ROLE}')"
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON run_stats, run_latency TO {APP_ROLE}")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS runs_stats_delete ON runs")
    op.execute("DROP TRIGGER IF EXISTS runs_stats_update ON runs")
    op.execute("DROP TRIGGER IF EXISTS runs_stats_insert ON runs")
    op.execute("DROP FUNCTION IF EXISTS orch_run_stats_deleted()")
    op.execute("DROP FUNCTION IF EXISTS orch_run_stats_row()")
    op.execute("DROP FUNCTION IF EXISTS orch_latency_le(text, float8)")
    op.execute("DROP TABLE IF EXISTS run_latency")
    op.execute("DROP TABLE IF EXISTS run_stats")
    op.execute("DROP INDEX IF EXISTS events_attempt_lost_idx")
