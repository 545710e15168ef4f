"""Bodies of the features API (`/v1/features`): a tenant's datasets of lines and the runs started on them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from schemas.api import NO_NUL, JsonObject


class FeatureFormat(StrEnum):
    JSONL = "jsonl"  # one JSON object per line
    CSV = "csv"  # a header line, then one record per line (no line breaks inside fields)


class FeatureCreateRequest(BaseModel):
    """Register a file already in storage. A multipart upload (fields `name`, `file`, `format`) is the
    other way in."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255, pattern=NO_NUL)
    url: str = Field(
        min_length=1, max_length=4096, pattern=NO_NUL, description="file:///... or an allowed fsspec URL."
    )
    format: FeatureFormat | None = Field(default=None, description="Default: from the URL's suffix.")


class FeatureView(BaseModel):
    id: UUID
    name: str
    url: str
    format: FeatureFormat
    created_at: datetime


class FeatureList(BaseModel):
    data: list[FeatureView]
    total: int


class FeatureRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str = Field(min_length=1, max_length=255, pattern=NO_NUL, description="A published dataset task.")
    context: JsonObject = Field(default_factory=dict, description="The task's context variables.")
    run_name: str | None = Field(default=None, max_length=255, pattern=NO_NUL)


def format_of(url: str) -> FeatureFormat:
    """What a URL's suffix says its lines are; JSONL unless it says CSV."""
    path = url.split("?", 1)[0].lower()
    return FeatureFormat.CSV if path.endswith(".csv") else FeatureFormat.JSONL
