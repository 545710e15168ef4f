"""Resolving references (schemas.templates) in a step's input against plain data: no evaluation, only
lookups of names and list positions, so a document can read data but never run code."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from schemas.templates import REFERENCE, TemplateError, parse_path, whole_reference

_MAX_TEXT = 1_000_000  # a reference put into text may not grow it past this


def lookup(path: str, scope: Mapping[str, Any]) -> Any:
    """The value at `path` in `scope` (its roots), or a TemplateError naming where the path stopped."""
    root, parts = parse_path(path)
    if root not in scope:
        raise TemplateError(f"'{root}' is not known here")
    value = scope[root]
    walked = root
    for part in parts:
        in_list = isinstance(part, int) and isinstance(value, list) and part < len(value)
        if in_list or (isinstance(part, str) and isinstance(value, dict) and part in value):
            value = value[part]
        else:
            raise TemplateError(f"'{path}': nothing at {part!r} under '{walked}'")
        walked += f"[{part}]" if isinstance(part, int) else f".{part}"
    return value


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def resolve(value: Any, scope: Mapping[str, Any], keep: frozenset[str] = frozenset()) -> Any:
    """`value` with every reference replaced from `scope`. References to a root in `keep` are left as they
    are, to be resolved later with more in scope (a spawn's per-child `item`)."""
    if isinstance(value, dict):
        return {name: resolve(item, scope, keep) for name, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, scope, keep) for item in value]
    if not isinstance(value, str) or "{{" not in value:
        return value
    whole = whole_reference(value)
    if whole is not None:
        return value if parse_path(whole)[0] in keep else lookup(whole, scope)

    def text_of(match: Any) -> str:
        path = match.group(1)
        return str(match.group(0)) if parse_path(path)[0] in keep else _as_text(lookup(path, scope))

    text = REFERENCE.sub(text_of, value)
    if len(text) > _MAX_TEXT:
        raise TemplateError(f"a resolved text is longer than {_MAX_TEXT} characters")
    return text
