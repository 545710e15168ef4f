"""Published tasks: named, documented entry points onto job kinds, with typed context variables.

The data-products surface lists them (`GET /tasks`) and validates a run's `context` against them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

CONTEXT_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}

_TASK_NAMESPACE = uuid.UUID("5b0a6f1e-6d1c-4a53-9a3e-0c2f6e9b7d10")


@dataclass(frozen=True)
class ContextVar:
    name: str
    type: str
    required: bool = False
    default: Any = None
    description: str = ""
    resolve_from: str | None = None


@dataclass(frozen=True)
class PublishedTask:
    name: str
    display_name: str
    kind: str
    category: str
    description: str
    execution_mode: str = "async"
    context_vars: tuple[ContextVar, ...] = field(default_factory=tuple)

    @property
    def id(self) -> uuid.UUID:
        """Stable across deployments: derived from the task's name."""
        return uuid.uuid5(_TASK_NAMESPACE, self.name)


class ContextError(Exception):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("invalid context")
        self.errors = errors


def resolve_context(task: PublishedTask, context: dict[str, Any]) -> dict[str, Any]:
    """Check `context` against the task's variables and fill defaults; unknown keys are refused."""
    errors: list[dict[str, Any]] = []
    declared = {var.name: var for var in task.context_vars}
    resolved: dict[str, Any] = {}
    for name in context:
        if name not in declared:
            errors.append(_error(name, f"unknown context variable '{name}'", "extra_forbidden"))
    for var in task.context_vars:
        if var.name not in context:
            if var.required:
                errors.append(_error(var.name, f"missing required context variable '{var.name}'", "missing"))
            elif var.default is not None:
                resolved[var.name] = var.default
            continue
        value = context[var.name]
        expected = CONTEXT_TYPES[var.type]
        # bool is an int in Python; a JSON true is not a number here.
        if not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
            errors.append(
                _error(var.name, f"context variable '{var.name}' must be of type {var.type}", "type_error")
            )
            continue
        resolved[var.name] = value
    if errors:
        raise ContextError(errors)
    return resolved


def _error(name: str, msg: str, kind: str) -> dict[str, Any]:
    return {"loc": ["body", "context", name], "msg": msg, "type": kind}


PUBLISHED_TASKS: dict[str, PublishedTask] = {
    task.name: task
    for task in (
        PublishedTask(
            name="sleep",
            display_name="Sleep",
            kind="sleep",
            category="diagnostics",
            description="Waits for `duration` seconds, reporting progress in `steps`; fails on request.",
            context_vars=(
                ContextVar("duration", "number", required=True, description="Seconds to wait (0-3600)."),
                ContextVar(
                    "steps", "integer", default=1, description="Progress reports spread over the wait."
                ),
                ContextVar("fail", "boolean", default=False, description="End the run failed."),
                ContextVar(
                    "usage",
                    "object",
                    description="Usage to report as spent: `{input_tokens, output_tokens, cost}`.",
                ),
            ),
        ),
    )
}
