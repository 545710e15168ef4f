"""Errors a job raises to end its attempt. Their messages are shown to users, so keep them plain."""

from __future__ import annotations

from uuid import UUID

from schemas.runs import ErrorCode


class JobError(Exception):
    """A permanent failure: the run ends `failed` with this code and message."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RetryableJobError(JobError):
    """A transient failure: another attempt is scheduled while attempts remain."""


class JobParked(Exception):
    """The job waits for child runs (a workflow's join): the attempt ends, freeing its worker, and the run's
    next attempt is dispatched when the last of `awaiting` ends. It resumes from its latest checkpoint."""

    def __init__(self, step_key: str, awaiting: tuple[UUID, ...]) -> None:
        super().__init__(f"waiting for {len(awaiting)} child runs of step {step_key!r}")
        self.step_key = step_key
        self.awaiting = awaiting


class JobCanceled(Exception):
    """Raised at a checkpoint once a cancel was requested; the run ends `canceled`."""


class AttemptSuperseded(Exception):
    """This attempt lost its lease or was replaced; a zombie must stop without writing."""
