"""Tenant records and corpora, and the trees taxonomy builds store from them.

`records` are a tenant's text items, upserted by (tenant, external_id); `version` counts rewrites, so a
job that rewrites records in batches can prove no batch ran twice. `corpora` name sets of records and the
metadata attributes they may be filtered on; their numeric id is what the list-jobs surface reports.
`taxonomy_nodes` and `taxonomy_assignments` hold the tree of one taxonomy run, replaced as a whole.
All four are tenant tables under row-level security, with the init-plan policies of 0008.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

APP_ROLE = "orch_app"
TABLES = ("records", "corpora", "taxonomy_nodes", "taxonomy_assignments")
NOW = sa.text("clock_timestamp()")
# As in 0008: scalar sub-selects are evaluated once per statement, not once per row.
_TENANT = "tenant_id = ANY ((SELECT orch_tenants())::text[])"
_SYSTEM = f"(SELECT current_user) <> '{APP_ROLE}'"


def upgrade() -> None:
    op.create_table(
        "records",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("external_id", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("field_id", sa.Text, nullable=False),
        sa.Column("field_label", sa.Text),
        sa.Column("source_type", sa.Text, nullable=False),
        sa.Column("source_id", sa.Text, nullable=False, server_default=""),
        sa.Column("corpus_key", sa.Text),
        sa.Column("metadata", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        # The replace-filter-attrs run that last rewrote the record: its batches skip records it already did.
        sa.Column("rewritten_by", UUID(as_uuid=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.UniqueConstraint("tenant_id", "external_id", name="records_tenant_external_key"),
    )
    op.create_index(
        "records_tenant_field_source_idx",
        "records",
        ["tenant_id", "field_id", "source_type", "source_id", "id"],
    )
    op.create_index("records_tenant_corpus_idx", "records", ["tenant_id", "corpus_key", "id"])
    op.create_table(
        "corpora",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("filter_attributes", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        # The vector index version the rebuild job last put in place (None: never built).
        sa.Column("index_version", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.UniqueConstraint("tenant_id", "key", name="corpora_tenant_key_key"),
    )
    op.create_table(
        "taxonomy_nodes",
        sa.Column("run_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("node_id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("parent_id", sa.Integer),
        sa.Column("depth", sa.Integer, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("top_terms", JSONB, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("representative_record_ids", JSONB, nullable=False),
    )
    op.create_table(
        "taxonomy_assignments",
        sa.Column("run_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("record_id", sa.BigInteger, primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("node_id", sa.Integer, nullable=False),
        sa.Column("path", JSONB, nullable=False),
    )
    for table in TABLES:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE}")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} TO {APP_ROLE} "
            f"USING ({_TENANT}) WITH CHECK ({_TENANT})"
        )
        op.execute(f"CREATE POLICY system_roles ON {table} USING ({_SYSTEM}) WITH CHECK ({_SYSTEM})")
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}")


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
