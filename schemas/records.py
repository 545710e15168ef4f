"""Bodies of the records and corpora API (`/v1/records`, `/v1/corpora`), and the plain values jobs read.

A record is one text item of a tenant, upserted by its `external_id`. `source_id` "" is the canonical
"no source" bucket: a record loaded without one lands there, never in a separate NULL bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.api import NO_NUL, JsonObject

MAX_RECORDS_PER_CALL = 10_000

Name = Field(min_length=1, max_length=255, pattern=NO_NUL)


class RecordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    external_id: str = Field(min_length=1, max_length=255, pattern=NO_NUL)
    text: str = Field(max_length=100_000, pattern=NO_NUL)
    field_id: str = Field(min_length=1, max_length=255, pattern=NO_NUL)
    field_label: str | None = Field(default=None, max_length=255, pattern=NO_NUL)
    source_type: str = Field(min_length=1, max_length=255, pattern=NO_NUL)
    source_id: str = Field(default="", max_length=255, pattern=NO_NUL, description='"" is "no source".')
    corpus_key: str | None = Field(default=None, min_length=1, max_length=255, pattern=NO_NUL)
    metadata: JsonObject = Field(default_factory=dict)


class RecordBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    records: list[RecordIn] = Field(min_length=1, max_length=MAX_RECORDS_PER_CALL)


class UpsertCounts(BaseModel):
    inserted: int
    updated: int


class RecordView(BaseModel):
    id: int
    external_id: str
    text: str
    field_id: str
    field_label: str | None
    source_type: str
    source_id: str
    corpus_key: str | None
    metadata: dict[str, Any]
    version: int


class RecordPage(BaseModel):
    data: list[RecordView]
    next_cursor: str | None


class CorpusCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.:-]+$")
    name: str = Field(min_length=1, max_length=255, pattern=NO_NUL)
    filter_attributes: list[str] = Field(
        default_factory=list, max_length=64, description="Metadata keys a query may filter on."
    )


class CorpusView(BaseModel):
    id: int = Field(description="Numeric id, as the list-jobs surface reports `corpusId`.")
    key: str
    name: str
    filter_attributes: list[str]
    index_version: str | None = Field(default=None, description="The vector index in place, if built.")


class CorpusList(BaseModel):
    data: list[CorpusView]


@dataclass(frozen=True)
class RecordText:
    """What a job reads of a record: its database id, its external id and its text."""

    id: int
    external_id: str
    text: str
