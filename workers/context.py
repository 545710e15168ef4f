"""What a running job sees: its params, progress and step reporting, and cancel checkpoints."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from orchestrator.domain.commands import (
    Command,
    FinishStep,
    RecordCheckpoint,
    RecordUsage,
    ReportProgress,
    StartStep,
)
from orchestrator.domain.errors import DomainError
from orchestrator.services import RunService
from workers.errors import AttemptSuperseded, JobCanceled
from workers.resilience import retried

_CANCEL_CHECK_SECONDS = 0.2
BLIP_SECONDS = 10.0


class JobContext:
    def __init__(
        self,
        service: RunService,
        run_id: UUID,
        attempt: int,
        resume_from: dict[str, Any] | None = None,
        tenant_id: str = "",
        attributes: dict[str, Any] | None = None,
    ) -> None:
        self.service = service
        self.run_id = run_id
        # Whose run this is: a job touching tenant data (a bucket, say) scopes it by this, never by params.
        self.tenant_id = tenant_id
        self.attempt = attempt
        # Whose run this is and what it was created on (a taxonomy build's field and source).
        self.tenant_id = tenant_id
        self.attributes = attributes or {}
        # Figures the job measured (timings, quality), recorded with its success as the run's metrics.
        self.metrics: dict[str, Any] = {}
        # The latest checkpoint an earlier attempt recorded (None on a first attempt or when none did):
        # a resumable job starts after it, so work committed before a crash is not done twice.
        self.resume_from = resume_from
        self.lease_lost = False
        self._sequence = 0
        # The attempt has just started, which it could not have done on a run with a cancel requested
        # (the start would have been refused or the cancel applied): that counts as the first check.
        self._last_cancel_check = time.monotonic()

    def _write(self, command: Command) -> None:
        actor = f"worker:attempt-{self.attempt}"
        try:
            retried(
                lambda: self.service.execute(self.run_id, command, actor=actor, whole_stream=False),
                BLIP_SECONDS,
            )
        except DomainError as exc:
            # The run ended or moved to another attempt without us: stop, write nothing more.
            raise AttemptSuperseded(str(exc)) from None

    def checkpoint(self) -> None:
        """Stop here if the run was canceled or this attempt lost its lease. The log is asked at most every
        _CANCEL_CHECK_SECONDS: a cancel is honoured within that, and a job that reaches checkpoints often (or
        a short one that ends right after starting) costs no read each time."""
        if self.lease_lost:
            raise AttemptSuperseded("lease lost")
        now = time.monotonic()
        if now - self._last_cancel_check < _CANCEL_CHECK_SECONDS:
            return
        self._last_cancel_check = now
        if retried(lambda: self.service.cancel_requested(self.run_id), BLIP_SECONDS):
            raise JobCanceled()

    def sleep(self, seconds: float) -> None:
        """Sleep in short slices, honouring cancel requests within a fraction of a second."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.05))
            self.checkpoint()

    def progress(
        self,
        done: int,
        total: int | None = None,
        counts: dict[str, int] | None = None,
        message: str | None = None,
    ) -> None:
        self.checkpoint()
        self._write(ReportProgress(self.attempt, done, total, counts or {}, message))

    def save_checkpoint(self, data: dict[str, Any]) -> None:
        """Record durably that the job has finished everything `data` describes (JSON). Write the work's
        own output first and this last: a crash between the two redoes that piece, never skips it."""
        self.checkpoint()
        self._write(RecordCheckpoint(self.attempt, data))
        self.resume_from = data

    def usage(self, **tokens: Any) -> None:
        self._write(RecordUsage(self.attempt, **tokens))

    def start_step(
        self, step_key: str, sequence: int, tool_name: str, input: dict[str, Any], tool_call_id: str
    ) -> None:
        """Record that a step began, numbered by the job itself (a workflow numbers steps by their place
        in its document, whichever attempt runs them)."""
        self.checkpoint()
        self._write(StartStep(self.attempt, step_key, sequence, tool_name, input, tool_call_id))

    def finish_step(
        self, step_key: str, sequence: int, output: dict[str, Any], error: str | None, duration_ms: int
    ) -> None:
        status = "failed" if error is not None else "succeeded"
        self._write(FinishStep(self.attempt, step_key, sequence, status, output, error, duration_ms))

    @contextmanager
    def step(
        self, step_key: str, tool_name: str | None = None, input: dict[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Record a step around a block; the block fills the yielded dict with the step's output."""
        self.checkpoint()
        self._sequence += 1
        sequence = self._sequence
        self._write(StartStep(self.attempt, step_key, sequence, tool_name, input or {}))
        started = time.monotonic()
        output: dict[str, Any] = {}
        try:
            yield output
        except Exception as exc:
            elapsed = int((time.monotonic() - started) * 1000)
            self._write(
                FinishStep(self.attempt, step_key, sequence, "failed", output, type(exc).__name__, elapsed)
            )
            raise
        elapsed = int((time.monotonic() - started) * 1000)
        self._write(FinishStep(self.attempt, step_key, sequence, "succeeded", output, None, elapsed))
