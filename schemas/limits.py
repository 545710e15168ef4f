"""Bodies of /v1/limits: a tenant's running limits (runs dispatched and not finished at once)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from schemas.jobs import JOB_KINDS

MAX_LIMIT = 1_000_000


def known_kind(kind: str) -> str:
    if kind not in JOB_KINDS:
        raise ValueError(f"unknown kind; known kinds: {', '.join(sorted(JOB_KINDS))}")
    return kind


KindName = Annotated[str, AfterValidator(known_kind)]


class LimitsUpdate(BaseModel):
    """Replaces the tenant's limits as a whole: what the body leaves out is removed."""

    model_config = ConfigDict(extra="forbid")
    max_running: int | None = Field(
        default=None,
        ge=0,
        le=MAX_LIMIT,
        description="Running runs of all kinds at once; null: the default (ORCH_TENANT_MAX_RUNNING); "
        "0: unlimited.",
    )
    per_kind: dict[KindName, Annotated[int, Field(ge=1, le=MAX_LIMIT)]] = Field(
        default_factory=dict, max_length=64, description="Running runs of one kind at once."
    )


class LimitsView(BaseModel):
    tenant_id: str
    max_running: int | None = Field(description="The tenant's own total; null when the default applies.")
    default_max_running: int | None = Field(description="ORCH_TENANT_MAX_RUNNING; null: unlimited.")
    effective_max_running: int | None = Field(description="The total in force; null: unlimited.")
    per_kind: dict[str, int]
    running: dict[str, int] = Field(description="Runs dispatched and not finished now, per kind.")
