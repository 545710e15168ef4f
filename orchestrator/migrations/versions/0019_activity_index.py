"""The dashboard's activity per minute: an index on when each run last started or finished.

`GET /v1/runs:activity` reads the runs that started or finished in the last minutes. A run that started in
the window finished, if at all, after it, so `coalesce(finished_at, started_at)` in the window finds both
kinds with one range scan; without the index the route read every run of the tenant (all 90,000 of a big
tenant's rows for an hour's few hundred). Partial: runs that never started nor finished are not in it.
Both columns change only with `status`, already indexed, so the projector's updates lose no HOT update.

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX runs_tenant_moved_idx ON runs (tenant_id, (coalesce(finished_at, started_at))) "
        "WHERE coalesce(finished_at, started_at) IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX runs_tenant_moved_idx")
