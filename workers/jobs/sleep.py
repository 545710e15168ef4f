"""The built-in `sleep` kind: really sleeps, reports progress, fails or retries on request."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from schemas.jobs import SleepParams
from schemas.runs import ErrorCode
from workers.context import JobContext
from workers.errors import JobError, RetryableJobError


def run(ctx: JobContext, params: SleepParams) -> dict[str, Any]:
    if ctx.attempt <= params.crash_attempts:
        # A real crash, as an OOM kill would do it: no cleanup, no last words.
        os.kill(os.getpid(), signal.SIGKILL)
    if ctx.attempt <= params.transient_failures:
        raise RetryableJobError(
            ErrorCode.SERVICE_UNAVAILABLE, f"transient failure requested (attempt {ctx.attempt})"
        )
    if params.uninterruptible:
        # No checkpoints: only the forced cancel (and the worker's lease keeper) can stop this one.
        time.sleep(params.duration)
    elif params.duration > 0 or params.crash_after_step:
        # Each finished slice is a checkpoint, so a retry after a crash sleeps only what is left.
        slice_seconds = params.duration / params.steps
        first = int((ctx.resume_from or {}).get("steps_done", 0)) + 1
        for done in range(first, params.steps + 1):
            ctx.sleep(slice_seconds)
            ctx.progress(done, params.steps)
            ctx.save_checkpoint({"steps_done": done})
            if ctx.attempt == 1 and done == params.crash_after_step:
                os.kill(os.getpid(), signal.SIGKILL)
    else:
        ctx.checkpoint()
    if params.usage is not None:
        ctx.usage(**params.usage.model_dump())
    if params.fail:
        raise JobError(params.fail_code, "failure requested by the run's parameters")
    return {"slept_seconds": params.duration}
