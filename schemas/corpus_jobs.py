"""Corpus jobs (`POST /v1/corpora/{key}/jobs`) and corpus queries (`POST /v1/corpora/{key}/query`).

A job's `type` is the list-jobs surface's name for it; each maps to one run kind.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.api import NO_NUL, JsonObject

JOB_TYPE_KINDS: dict[str, str] = {
    "JOB__CORPUS_REBUILD_VECTOR_INDEX": "corpus_rebuild_vector_index",
    "JOB__CORPUS_REPLACE_FILTER_ATTRS": "corpus_replace_filter_attrs",
}


class CorpusJobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["JOB__CORPUS_REBUILD_VECTOR_INDEX", "JOB__CORPUS_REPLACE_FILTER_ATTRS"]
    params: JsonObject = Field(default_factory=dict)


class RebuildIndexParams(BaseModel):
    """Rebuild a corpus's vector index from all its records."""

    model_config = ConfigDict(extra="forbid")
    dimensions: int = Field(
        default=256, ge=2, le=1024, description="Dimensions of the reduced TF-IDF vectors."
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1)


FilterValue = str | int | float | bool


class ReplaceFilterAttrsParams(BaseModel):
    """Declare a corpus's filterable attributes anew and rewrite every record's metadata to match: each
    declared attribute present (the record's value, else `defaults`, else null), undeclared ones dropped
    when `drop_undeclared`."""

    model_config = ConfigDict(extra="forbid")
    filter_attributes: list[str] = Field(
        default_factory=list, max_length=64, description="The new declaration."
    )
    defaults: dict[str, FilterValue | None] = Field(default_factory=dict, max_length=64)
    drop_undeclared: bool = False
    batch_size: int = Field(default=1000, ge=1, le=10_000, description="Records per committed batch.")


class CorpusQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=10_000, pattern=NO_NUL)
    k: int = Field(default=10, ge=1, le=100)
    filter: dict[str, FilterValue] | None = Field(
        default=None,
        max_length=16,
        description="Metadata values records must have; declared attributes only.",
    )


class QueryHit(BaseModel):
    record_id: int
    external_id: str
    score: float


class QueryResult(BaseModel):
    data: list[QueryHit]
    index_version: str
