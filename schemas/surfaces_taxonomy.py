"""Bodies of the taxonomy surface (`/v1/taxonomy/runs`), field for field as its reference page lists them.

The page never shows null: a field that does not apply to a run is absent. Optional fields are therefore
`None` here and the route drops `None` from the JSON (`response_model_exclude_none`), which leaves the
contents of `params` and `metrics` untouched (exclusion applies to model fields, not to map values).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from schemas.api import NO_NUL, JsonObject
from schemas.runs import ErrorCode, RunStatus


class TaxonomyRun(BaseModel):
    id: UUID
    cluster_count: int
    created_at: datetime
    embedding_count: int
    field_id: str
    node_count: int
    record_count: int
    source_id: str = Field(description='Empty string is the canonical "no source" bucket.')
    source_type: str
    status: RunStatus
    tenant_id: str
    updated_at: datetime
    error: str | None = Field(default=None, description="Sanitized failure message; present on failed runs.")
    error_code: ErrorCode | None = Field(default=None, description="Why the run failed; only on failed runs.")
    field_label: str | None = Field(default=None, description="Human-readable label; absent when unknown.")
    finished_at: datetime | None = None
    metrics: dict[str, Any] | None = Field(default=None, description="Opaque run metrics; absent when none.")
    params: dict[str, Any] = Field(description="Opaque run parameters, as submitted.")
    started_at: datetime | None = None


class TaxonomyRunList(BaseModel):
    data: list[TaxonomyRun]


class TaxonomyRunCreate(BaseModel):
    """Our addition to the surface: how a taxonomy run gets its creation attributes."""

    model_config = ConfigDict(extra="forbid")
    tenant_id: str = Field(
        min_length=1, max_length=255, pattern=NO_NUL, description="Own tenant or one the key is granted."
    )
    field_id: str = Field(min_length=1, max_length=255, pattern=NO_NUL)
    source_type: str = Field(min_length=1, max_length=255, pattern=NO_NUL)
    source_id: str = Field(
        max_length=255, pattern=NO_NUL, description='"" is the canonical "no source" bucket.'
    )
    field_label: str | None = Field(default=None, min_length=1, max_length=255, pattern=NO_NUL)
    params: JsonObject = Field(default_factory=dict, description="Opaque parameters for the build.")
