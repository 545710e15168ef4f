"""Run counts per (tenant, kind, status, top level): the runs projection keeps them in the transaction that
writes its rows, so list totals read a handful of counter rows instead of counting millions of runs.

Filled here from the rows the projection has written so far; from then on the projector keeps them.
Row-level security as on every tenant table (0003).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

APP_ROLE = "orch_app"


def upgrade() -> None:
    op.create_table(
        "run_counts",
        sa.Column("tenant_id", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, primary_key=True),
        sa.Column("status", sa.Text, primary_key=True),
        sa.Column("top_level", sa.Boolean, primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
    )
    op.execute(
        "INSERT INTO run_counts (tenant_id, kind, status, top_level, count) "
        "SELECT tenant_id, kind, status, parent_id IS NULL, count(*) FROM runs GROUP BY 1, 2, 3, 4"
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON run_counts TO {APP_ROLE}")
    op.execute("ALTER TABLE run_counts ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE run_counts FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON run_counts TO {APP_ROLE} "
        "USING (tenant_id = ANY (orch_tenants())) WITH CHECK (tenant_id = ANY (orch_tenants()))"
    )
    op.execute(
        "CREATE POLICY system_roles ON run_counts "
        f"USING (current_user <> '{APP_ROLE}') WITH CHECK (current_user <> '{APP_ROLE}')"
    )


def downgrade() -> None:
    op.drop_table("run_counts")
