"""Every table of the orchestrator, in one place. Alembic migrations create them; the app never does."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

metadata = sa.MetaData()

NOW = sa.text("clock_timestamp()")

events = sa.Table(
    "events",
    metadata,
    sa.Column("position", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
    sa.Column("stream_id", UUID(as_uuid=True), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("data", JSONB, nullable=False),
    sa.Column("metadata", JSONB, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.UniqueConstraint("stream_id", "version", name="events_stream_version_key"),
    # /metrics counts lost attempts at every scrape (migration 0009_metrics).
    sa.Index("events_attempt_lost_idx", "position", postgresql_where=sa.text("type = 'AttemptLost'")),
    # A run's children, for a cancel that cascades from the write side (migration 0011).
    sa.Index(
        "events_children_idx",
        sa.text("(data ->> 'parent_id')"),
        postgresql_where=sa.text("type = 'RunCreated' AND data ->> 'parent_id' IS NOT NULL"),
    ),
    # Parked runs, for the reconciler's resume safety net (migration 0014).
    sa.Index("events_parked_idx", "stream_id", "version", postgresql_where=sa.text("type = 'RunParked'")),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("run_id", UUID(as_uuid=True), nullable=False),
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("queue", sa.Text, nullable=False),
    sa.Column("not_before", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
    # The run's kind and priority, for per-kind limits and the order within a tenant (migration 0013).
    sa.Column("kind", sa.Text, nullable=False, server_default=""),
    sa.Column("priority", sa.SmallInteger, nullable=False, server_default="0"),
    # The id of the API request that created the run, for the worker's logs and events (migration 0017).
    sa.Column("request_id", sa.Text),
    # The submitting request's trace context (W3C headers), when tracing is on (migration 0017).
    sa.Column("trace_context", JSONB),
    sa.Index("outbox_unsent_idx", "not_before", "id", postgresql_where=sa.text("sent_at IS NULL")),
    sa.Index("outbox_run_idx", "run_id"),
    sa.Index("outbox_sent_idx", "sent_at", postgresql_where=sa.text("sent_at IS NOT NULL")),
    sa.Index("outbox_run_attempt_idx", "run_id", "attempt"),
    sa.Index(
        "outbox_tenant_due_idx",
        "tenant_id",
        "kind",
        sa.text("priority DESC"),
        "not_before",
        "id",
        postgresql_where=sa.text("sent_at IS NULL"),
    ),
)

# One row per run that is dispatched and not finished: published, waiting in the broker or running. The
# relay counts them against tenant_limits; the write path deletes a run's row when its attempt or the run
# ends (orchestrator/store/slots.py).
dispatch_slots = sa.Table(
    "dispatch_slots",
    metadata,
    sa.Column("run_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("queue", sa.Text, nullable=False, server_default=""),
    sa.Column("held_since", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Index("dispatch_slots_tenant_idx", "tenant_id", "kind"),
)

# A tenant's running limits: kind '' overrides the default for all its runs, any other kind limits that
# kind alone. 0 is unlimited.
tenant_limits = sa.Table(
    "tenant_limits",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, primary_key=True),
    sa.Column("max_running", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.CheckConstraint("max_running >= 0", name="tenant_limits_max_running_check"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("digest", sa.Text, nullable=False, unique=True),
    sa.Column("prefix", sa.Text, nullable=False),
    sa.Column("name", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    # Further tenants this key may act for on surfaces that name the tenant (taxonomy's tenant_id).
    sa.Column("grants", ARRAY(sa.Text), nullable=False, server_default=sa.text("'{}'::text[]")),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("request_hash", sa.Text, nullable=False),
    sa.Column("run_id", UUID(as_uuid=True), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
)

run_leases = sa.Table(
    "run_leases",
    metadata,
    sa.Column("run_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("worker", sa.Text, nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("run_leases_expires_idx", "expires_at"),
)

projection_checkpoints = sa.Table(
    "projection_checkpoints",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
)

# Read model: one row per run, folded from the log by orchestrator.projections.runs.
runs = sa.Table(
    "runs",
    metadata,
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
    sa.Column("retry_at", sa.DateTime(timezone=True)),
    sa.Column("progress_done", sa.Integer, nullable=False),
    sa.Column("progress_total", sa.Integer),
    sa.Column("counts", JSONB, nullable=False),
    sa.Column("params", JSONB, nullable=False),
    sa.Column("labels", JSONB, nullable=False),
    sa.Column("attributes", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("metrics", JSONB, nullable=False),
    sa.Column("result", JSONB),
    sa.Column("usage_input_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("usage_output_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("usage_cached_input_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("usage_cache_write_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("usage_cost", sa.Numeric, nullable=False, server_default="0"),
    sa.Column("event_count", sa.Integer, nullable=False),
    sa.Column("last_position", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("priority", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("not_before", sa.DateTime(timezone=True)),
    # The run this one retries (migration 0015); the retried run lists its retries through it.
    sa.Column("retry_of", UUID(as_uuid=True)),
    sa.Index("runs_tenant_created_idx", "tenant_id", sa.text("created_at DESC"), sa.text("id DESC")),
    sa.Index(
        "runs_tenant_status_created_idx",
        "tenant_id",
        "status",
        sa.text("created_at DESC"),
        sa.text("id DESC"),
    ),
    sa.Index(
        "runs_tenant_kind_created_idx", "tenant_id", "kind", sa.text("created_at DESC"), sa.text("id DESC")
    ),
    sa.Index("runs_tenant_parent_idx", "tenant_id", "parent_id"),
    sa.Index("runs_root_idx", "root_id"),
    sa.Index("runs_attributes_idx", "attributes", postgresql_using="gin"),
    sa.Index("runs_retry_of_idx", "retry_of", postgresql_where=sa.text("retry_of IS NOT NULL")),
    # Retention finds a tenant's oldest finished run trees by their roots (migration 0015).
    sa.Index(
        "runs_tenant_finished_roots_idx",
        "tenant_id",
        "finished_at",
        postgresql_where=sa.text("parent_id IS NULL AND finished_at IS NOT NULL"),
    ),
    # The dashboard's activity per minute: runs by when they last started or finished (migration 0019).
    sa.Index(
        "runs_tenant_moved_idx",
        "tenant_id",
        sa.text("(coalesce(finished_at, started_at))"),
        postgresql_where=sa.text("coalesce(finished_at, started_at) IS NOT NULL"),
    ),
)

# Read model: how many runs each (tenant, kind, status, top-level or child) holds, kept by the runs
# projection in the transaction that writes the rows, so list totals need no COUNT(*) over millions.
run_counts = sa.Table(
    "run_counts",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, primary_key=True),
    sa.Column("status", sa.Text, primary_key=True),
    sa.Column("top_level", sa.Boolean, primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
)

# Kept by the runs projection beside run_counts, for /metrics (orchestrator/projections/run_metrics.py):
# how many runs per tenant and kind ever started, and the queue-wait and duration histograms per kind.
run_started = sa.Table(
    "run_started",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
)

run_latency = sa.Table(
    "run_latency",
    metadata,
    sa.Column("kind", sa.Text, primary_key=True),
    sa.Column("metric", sa.Text, primary_key=True),  # queue_wait | duration
    sa.Column("le", sa.Float, primary_key=True),  # the bucket's upper bound; Infinity for the last
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("total", sa.Float, nullable=False),  # the sum of the seconds observed in this bucket
)

# Read model: the steps of each attempt, folded by orchestrator.projections.steps.
run_steps = sa.Table(
    "run_steps",
    metadata,
    sa.Column("run_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("sequence", sa.Integer, primary_key=True),
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("step_key", sa.Text, nullable=False),
    sa.Column("tool_name", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("input", JSONB, nullable=False),
    sa.Column("output", JSONB),
    sa.Column("error", sa.Text),
    sa.Column("duration_ms", sa.Integer),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("completed_at", sa.DateTime(timezone=True)),
    sa.Column("tool_call_id", sa.Text),  # migration 0014
)

# A tenant's datasets (orchestrator.store.features); runs copy a feature's URL and format when created.
features = sa.Table(
    "features",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("format", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.CheckConstraint("format IN ('jsonl', 'csv')", name="features_format_check"),
    sa.Index("features_tenant_created_idx", "tenant_id", sa.text("created_at DESC"), sa.text("id DESC")),
)

# A tenant's text records (migration 0012): upserted by (tenant, external_id); `version` counts rewrites.
# `source_id` "" is the canonical "no source" bucket, never NULL, so one equality filter finds it.
records = sa.Table(
    "records",
    metadata,
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
    sa.Index("records_tenant_field_source_idx", "tenant_id", "field_id", "source_type", "source_id", "id"),
    sa.Index("records_tenant_corpus_idx", "tenant_id", "corpus_key", "id"),
)

corpora = sa.Table(
    "corpora",
    metadata,
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

# The tree of one taxonomy run; node ids count from 1 within the run. Written as a whole by the job.
taxonomy_nodes = sa.Table(
    "taxonomy_nodes",
    metadata,
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

taxonomy_assignments = sa.Table(
    "taxonomy_assignments",
    metadata,
    sa.Column("run_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("record_id", sa.BigInteger, primary_key=True),
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("node_id", sa.Integer, nullable=False),
    sa.Column("path", JSONB, nullable=False),
)

# Workflow documents (migration 0014, orchestrator.store.workflows): a document's versions are
# never rewritten, so a run that captured one reads the same steps forever.
workflows = sa.Table(
    "workflows",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("latest_version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Index("workflows_tenant_created_idx", "tenant_id", sa.text("created_at DESC"), sa.text("id DESC")),
)

workflow_versions = sa.Table(
    "workflow_versions",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("workflow_id", UUID(as_uuid=True), sa.ForeignKey("workflows.id"), nullable=False),
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("label", sa.Text),
    sa.Column("document", JSONB, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.UniqueConstraint("workflow_id", "version", name="workflow_versions_workflow_version_key"),
)

# Recurring schedules (migration 0018, orchestrator.store.schedules): the current state of each schedule's
# event stream, written in the transaction that appends to it; the scheduler finds due ones by next_due_at.
schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("cron", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("params", JSONB, nullable=False),
    sa.Column("task", sa.Text),
    sa.Column("labels", JSONB, nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("missed", sa.Text, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("next_due_at", sa.DateTime(timezone=True)),
    sa.Column("last_fired_at", sa.DateTime(timezone=True)),
    sa.Column("last_run_id", UUID(as_uuid=True)),
    sa.Column("version", sa.Integer, nullable=False),  # the stream's version this row reflects
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.CheckConstraint("missed IN ('skip', 'catch_up_one')", name="schedules_missed_check"),
    sa.Index("schedules_tenant_created_idx", "tenant_id", sa.text("created_at DESC"), sa.text("id DESC")),
    sa.Index("schedules_due_idx", "next_due_at", postgresql_where=sa.text("enabled")),
)
