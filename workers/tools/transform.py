"""`transform`: deterministic data from the context and earlier outputs (orchestrator.workflows.transform)."""

from __future__ import annotations

from orchestrator.workflows.transform import TransformError, apply
from schemas.workflows import TransformInput
from workers.tools.base import ToolCall, ToolFailed, ToolResult, parsed


def run(call: ToolCall) -> ToolResult:
    try:
        return ToolResult({"value": apply(parsed(TransformInput, call.input))})
    except TransformError as exc:
        raise ToolFailed(str(exc)) from None
