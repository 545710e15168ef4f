"""`extract_fields`: one output column per configured JSON path (`user.emails[0]`, `$.a.b`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from orchestrator.datasets.tasks.base import BadRecord, ConfigError, DatasetTask, Record, config_value
from schemas.tasks import ContextVar

# A path is dot-separated keys, each optionally followed by [index]es; a leading `$.` is allowed.
_STEP = re.compile(r"([^.\[\]]+)((?:\[\d+\])*)")
_INDEX = re.compile(r"\[(\d+)\]")
MAX_COLUMNS = 200

PATHS = ContextVar(
    "paths", "object", required=True, description='Output column -> JSON path, e.g. {"city": "address.city"}.'
)
REQUIRED = ContextVar(
    "required", "boolean", default=False, description="A missing path makes the line bad instead of null."
)

Path = tuple[str | int, ...]


def parse_path(text: str) -> Path:
    """`a.b[0].c` as ("a", "b", 0, "c"); ValueError when it is not a path."""
    body = text[2:] if text.startswith("$.") else text
    steps: list[str | int] = []
    for part in body.split("."):
        match = _STEP.fullmatch(part)
        if match is None:
            raise ValueError(f"invalid JSON path {text!r}")
        steps.append(match.group(1))
        steps.extend(int(i) for i in _INDEX.findall(match.group(2)))
    return tuple(steps)


class _Missing(Exception):
    pass


def _follow(value: Any, path: Path) -> Any:
    for step in path:
        in_list = isinstance(step, int) and isinstance(value, list) and step < len(value)
        if in_list or (isinstance(step, str) and isinstance(value, dict) and step in value):
            value = value[step]
        else:
            raise _Missing()
    return value


class ExtractFields(DatasetTask):
    name = "extract_fields"
    display_name = "Extract fields"
    description = "Turns each record into the columns named by `paths`, each a JSON path into the record."
    context_vars = (PATHS, REQUIRED)

    def __init__(self, config: Mapping[str, Any]) -> None:
        paths = config_value(config, PATHS)
        if not isinstance(paths, dict) or not paths or len(paths) > MAX_COLUMNS:
            raise ConfigError(PATHS.name, f"paths must map 1-{MAX_COLUMNS} columns to JSON paths")
        try:
            self.paths = {str(column): parse_path(str(path)) for column, path in paths.items()}
        except ValueError as exc:
            raise ConfigError(PATHS.name, str(exc)) from None
        self.required = bool(config_value(config, REQUIRED))

    def apply(self, record: Record) -> Record:
        out: Record = {}
        for column, path in self.paths.items():
            try:
                out[column] = _follow(record, path)
            except _Missing:
                if self.required:
                    raise BadRecord(f"no value at path for column {column!r}") from None
                out[column] = None
        return out
