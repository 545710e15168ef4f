"""Job kinds: the parameters each kind accepts and the queue it runs on.

The API validates submissions against these models; workers bind a handler to each kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from schemas.api import JsonObject
from schemas.corpus_jobs import RebuildIndexParams, ReplaceFilterAttrsParams
from schemas.features import FeatureFormat
from schemas.runs import ErrorCode
from schemas.taxonomy import TaxonomyBuildParams


class QueueClass(StrEnum):
    """Long and short kinds run on separate queues so a long run never blocks short ones."""

    SHORT = "short"
    LONG = "long"


class ReportedUsage(BaseModel):
    """Tokens and cost a job reports as spent (UsageRecorded), for runs that stand in for metered work."""

    model_config = ConfigDict(extra="forbid")
    input_tokens: int = Field(default=0, ge=0, le=10**12)
    output_tokens: int = Field(default=0, ge=0, le=10**12)
    cost: str = Field(default="0", pattern=r"^\d{1,12}(\.\d{1,12})?$", description="Decimal, e.g. 0.0125.")


class SleepParams(BaseModel):
    """The built-in `sleep` kind: waits, reports progress, optionally fails. Honest work for tests."""

    model_config = ConfigDict(extra="forbid")
    duration: float = Field(default=0.0, ge=0.0, le=3600.0, description="Seconds to sleep.")
    steps: int = Field(default=1, ge=1, le=1000, description="Progress reports spread over the duration.")
    fail: bool = Field(default=False, description="End the run failed instead of succeeded.")
    fail_code: ErrorCode = ErrorCode.INTERNAL_ERROR
    transient_failures: int = Field(
        default=0, ge=0, le=10, description="Fail this many attempts with a retryable error first."
    )
    uninterruptible: bool = Field(
        default=False, description="Sleep without cancel checkpoints (fault drills: forced cancels)."
    )
    usage: ReportedUsage | None = Field(default=None, description="Usage to report as spent (tests).")
    crash_attempts: int = Field(
        default=0,
        ge=0,
        le=10,
        description="Kill the worker process in this many attempts first (fault drills).",
    )
    crash_after_step: int = Field(
        default=0,
        ge=0,
        le=1000,
        description="Kill the worker once, in the first attempt, right after this step's checkpoint "
        "(fault drills: the retry resumes after it). 0 never.",
    )


class DatasetTaskParams(BaseModel):
    """The `dataset_task` kind: one dataset task over one feature's lines, in chunks, into one result file.
    The feature's URL and format are copied in when the run is created, so the run needs nothing but its
    own log; the worker checks again that the run's tenant may read that URL."""

    model_config = ConfigDict(extra="forbid")
    task: str = Field(min_length=1, max_length=255, description="A dataset task's name, e.g. `redact`.")
    input_url: str = Field(min_length=1, max_length=4096, description="The feature's file.")
    input_format: FeatureFormat = FeatureFormat.JSONL
    feature_id: str | None = Field(default=None, max_length=64)
    config: JsonObject = Field(default_factory=dict, description="The task's own context variables.")
    chunk_lines: int = Field(default=10_000, ge=1, le=1_000_000, description="Lines per chunk.")
    max_bad_share: float = Field(
        default=0.01, ge=0.0, le=1.0, description="Fail with invalid_output above this share of bad lines."
    )
    crash_after_chunk: int = Field(
        default=0,
        ge=0,
        description="Kill the worker once, in the first attempt, right after this chunk's checkpoint "
        "(fault drills: the retry resumes after it). 0 never.",
    )


class OpaqueParams(BaseModel):
    """Parameters recorded as sent; the job kind's worker validates them when it runs."""

    model_config = ConfigDict(extra="allow")


@dataclass(frozen=True)
class JobKind:
    name: str
    params_model: type[BaseModel]
    queue: QueueClass


JOB_KINDS: dict[str, JobKind] = {
    kind.name: kind
    for kind in (
        JobKind("sleep", SleepParams, QueueClass.SHORT),
        # The kinds below are served by the public surfaces; their workers arrive with their own issues.
        # Until a worker for a kind is deployed, its runs end `failed` with `service_unavailable`.
        JobKind("taxonomy_build", TaxonomyBuildParams, QueueClass.LONG),
        JobKind("dataset_task", DatasetTaskParams, QueueClass.LONG),
        JobKind("corpus_rebuild_vector_index", RebuildIndexParams, QueueClass.LONG),
        JobKind("corpus_replace_filter_attrs", ReplaceFilterAttrsParams, QueueClass.LONG),
        JobKind("workflow", OpaqueParams, QueueClass.SHORT),
    )
}
