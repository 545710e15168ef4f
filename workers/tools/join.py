"""`join`: wait for an earlier spawn's children, then report how each ended. While any is still live the run
parks (the attempt ends, its worker slot is free); the last child's end resumes it."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any
from uuid import UUID

from orchestrator.workflows.outcomes import USAGE_FIELDS, ChildOutcome
from schemas.workflows import JoinInput
from workers.context import BLIP_SECONDS
from workers.errors import JobParked
from workers.resilience import retried
from workers.tools.base import ToolCall, ToolFailed, ToolResult, parsed


def _children(call: ToolCall) -> list[ChildOutcome]:
    spec = parsed(JoinInput, call.input)
    spawned = call.outputs.get(spec.step)
    ids = spawned.get("children") if isinstance(spawned, dict) else None
    if not isinstance(ids, list):
        raise ToolFailed(f"step {spec.step!r} started no children")
    run_ids = [UUID(str(i)) for i in ids]
    ctx = call.ctx
    return retried(lambda: ctx.service.child_outcomes(ctx.tenant_id, run_ids), BLIP_SECONDS)


def pending(call: ToolCall) -> tuple[tuple[UUID, ...], int]:
    """The children the step awaits and how many of them are still live. Asked before the step is recorded,
    so a wait leaves no half-finished step behind: the step runs, and is recorded once, in the attempt that
    finds them all ended."""
    children = _children(call)
    return tuple(c.run_id for c in children), sum(not c.ended for c in children)


def run(call: ToolCall) -> ToolResult:
    spec = parsed(JoinInput, call.input)
    children = _children(call)
    if not all(c.ended for c in children):  # `pending` is asked first; this only guards its contract
        raise JobParked(call.step_key, tuple(c.run_id for c in children))
    statuses = Counter(c.status for c in children)
    output: dict[str, Any] = {
        "count": len(children),
        "statuses": dict(sorted(statuses.items())),
        "results": [
            {"id": str(c.run_id), "status": c.status, "result": c.result, "error": c.error} for c in children
        ],
    }
    usage: dict[str, Any] = {name: sum(int(c.usage.get(name, 0)) for c in children) for name in USAGE_FIELDS}
    usage["cost"] = format(sum((Decimal(str(c.usage.get("cost", "0"))) for c in children), Decimal(0)), "f")
    not_succeeded = len(children) - statuses.get("succeeded", 0)
    if not_succeeded and not spec.allow_failed:
        raise ToolFailed(f"{not_succeeded} of {len(children)} children did not succeed", output)
    return ToolResult(output, usage)
