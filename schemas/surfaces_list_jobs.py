"""Bodies of the list-jobs surface (`POST /v1/list-jobs`), in the upstream API's camelCase spelling.

Python names are snake_case with camelCase aliases: requests accept only the aliases (anything else is an
extra field and is rejected), responses are written with them.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class JobType(StrEnum):
    UNKNOWN = "JOB__UNKNOWN"
    CORPUS_REBUILD_VECTOR_INDEX = "JOB__CORPUS_REBUILD_VECTOR_INDEX"
    CORPUS_REPLACE_FILTER_ATTRS = "JOB__CORPUS_REPLACE_FILTER_ATTRS"


class JobState(StrEnum):
    UNKNOWN = "JOB_STATE__UNKNOWN"
    QUEUED = "JOB_STATE__QUEUED"
    STARTED = "JOB_STATE__STARTED"
    COMPLETED = "JOB_STATE__COMPLETED"
    FAILED = "JOB_STATE__FAILED"
    TRANSIENT_FAILURE_RETRY_IMMINENT = "JOB_STATE__TRANSIENT_FAILURE_RETRY_IMMINENT"
    ABORTED = "JOB_STATE__ABORTED"


class ListJobsRequest(BaseModel):
    """Optional filters, AND-ed. With `pageKey`, the filters come from the key and these are ignored."""

    model_config = ConfigDict(extra="forbid")
    job_id: str | None = Field(default=None, alias="jobId", max_length=255)
    corpus_id: list[int] | None = Field(default=None, alias="corpusId", max_length=100)
    epoch_secs: int | None = Field(
        default=None, alias="epochSecs", description="Created since; at most 180 days back (the default)."
    )
    state: list[JobState] | None = Field(default=None, max_length=7, description="Default: QUEUED, STARTED.")
    num_results: int | None = Field(default=None, alias="numResults", ge=1, le=100, description="Default 20.")
    page_key: str | None = Field(default=None, alias="pageKey", max_length=2048)


class StatusEntry(BaseModel):
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)
    code: str
    status_detail: str = Field(alias="statusDetail")


class Job(BaseModel):
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)
    id: str
    type: JobType
    corpus_id: list[int] = Field(alias="corpusId")
    state: JobState
    ts_create: str = Field(alias="tsCreate", description="Epoch seconds, as a string.")
    ts_start: str | None = Field(default=None, alias="tsStart", description="Absent until the job started.")
    ts_complete: str | None = Field(default=None, alias="tsComplete", description="Absent until it ended.")
    user_handle: str | None = Field(default=None, alias="userHandle")


class ListJobsResponse(BaseModel):
    """Also the error body: one status entry carrying the code, and no jobs."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)
    status: list[StatusEntry]
    job: list[Job]
    page_key: str | None = Field(default=None, alias="pageKey", description="Absent on the last page.")
