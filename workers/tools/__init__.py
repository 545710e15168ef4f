"""Workflow tools by name, one module each; the names and their inputs are declared in schemas.workflows."""

from __future__ import annotations

from workers.tools import join, spawn, task, transform
from workers.tools.base import Tool

TOOLS: dict[str, Tool] = {
    "transform": transform.run,
    "task": task.run,
    "spawn": spawn.run,
    "join": join.run,
}
