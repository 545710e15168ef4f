"""Run statuses and error codes: the vocabulary every surface maps from."""

from enum import StrEnum


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class ErrorCode(StrEnum):
    INSUFFICIENT_DATA = "insufficient_data"
    SERVICE_UNAVAILABLE = "service_unavailable"
    GENERATION_FAILED = "generation_failed"
    INVALID_OUTPUT = "invalid_output"
    INTERNAL_ERROR = "internal_error"
