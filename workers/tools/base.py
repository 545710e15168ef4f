"""What a workflow tool is given and gives back. A tool is one function in one module of this package."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from workers.context import JobContext


@dataclass(frozen=True)
class ToolCall:
    ctx: JobContext
    step_key: str
    input: dict[str, Any]  # references resolved (a spawn's per-child ones excepted)
    context: Mapping[str, Any]  # the run's context
    outputs: Mapping[str, Any]  # earlier steps' outputs, by key


@dataclass(frozen=True)
class ToolResult:
    output: dict[str, Any]
    # Tokens and cost the step spent (UsageRecorded's fields); summed into the run's usage.
    usage: dict[str, Any] = field(default_factory=dict)


class ToolFailed(Exception):
    """The step failed for a reason its user can act on; `output` is what it got to before failing."""

    def __init__(self, message: str, output: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.output = output or {}


Tool = Callable[[ToolCall], ToolResult]


M = TypeVar("M", bound=BaseModel)


def parsed(model: type[M], value: dict[str, Any]) -> M:
    """The step's resolved input as its tool's model: a reference that resolved to the wrong type fails
    the step, naming the field."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        at = ".".join(str(part) for part in first["loc"]) or "input"
        raise ToolFailed(f"input.{at}: {first['msg']}") from None
