"""Errors a job raises to end its attempt. Their messages are shown to users, so keep them plain."""

from __future__ import annotations

from schemas.runs import ErrorCode


class JobError(Exception):
    """A permanent failure: the run ends `failed` with this code and message."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RetryableJobError(JobError):
    """A transient failure: another attempt is scheduled while attempts remain."""


class JobCanceled(Exception):
    """Raised at a checkpoint once a cancel was requested; the run ends `canceled`."""


class AttemptSuperseded(Exception):
    """This attempt lost its lease or was replaced; a zombie must stop without writing."""
