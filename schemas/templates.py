"""The reference syntax of workflow step inputs: `{{ context.region }}`, `{{ steps.fan.children[0] }}`.

A reference is a root name followed by `.name` and `[index]` parts, read from plain data; there is no
expression, call or arithmetic, so nothing in a document is ever evaluated. A string that is one reference
alone becomes the referenced value (any JSON type); references inside longer text are put in as text.
This module only parses; orchestrator.workflows.templates resolves.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

# What a reference may start from: the run's context, earlier steps' outputs by key, and, inside a spawn's
# per-child context, the item and index of the child being made.
ROOTS = frozenset({"context", "steps", "item", "index"})
PER_CHILD_ROOTS = frozenset({"item", "index"})

_NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
_PATH = rf"{_NAME}(?:\.{_NAME}|\[\d{{1,6}}\])*"
REFERENCE = re.compile(rf"\{{\{{\s*({_PATH})\s*\}}\}}")
_WHOLE = re.compile(rf"^\s*\{{\{{\s*({_PATH})\s*\}}\}}\s*$")
_PART = re.compile(rf"\.({_NAME})|\[(\d+)\]")
_OPEN = re.compile(r"\{\{")


class TemplateError(ValueError):
    """A reference that does not parse, names an unknown root, or points at nothing."""


def parse_path(path: str) -> tuple[str, list[str | int]]:
    """`steps.fan.children[0]` -> ("steps", ["fan", "children", 0])."""
    root = re.match(_NAME, path)
    assert root is not None  # the reference pattern starts with a name
    parts: list[str | int] = []
    for name, index in _PART.findall(path[root.end() :]):
        parts.append(int(index) if index else name)
    if root.group(0) not in ROOTS:
        raise TemplateError(f"unknown reference root '{root.group(0)}'; known: {', '.join(sorted(ROOTS))}")
    return root.group(0), parts


def whole_reference(text: str) -> str | None:
    """The path when `text` is one reference and nothing else, else None."""
    found = _WHOLE.match(text)
    return found.group(1) if found else None


def references(value: Any) -> Iterator[tuple[str, list[str | int]]]:
    """Every reference anywhere in `value` (nested dicts, lists, strings), parsed. A `{{` that does not
    open a well-formed reference is an error, so a typo is refused when the document is saved."""
    if isinstance(value, str):
        if len(_OPEN.findall(value)) != len(REFERENCE.findall(value)):
            raise TemplateError(f"malformed reference in {value[:80]!r}")
        for match in REFERENCE.finditer(value):
            yield parse_path(match.group(1))
    elif isinstance(value, dict):
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)
