"""`redact`: replaces e-mail addresses, phone numbers and ids matching configured patterns in text values."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from orchestrator.datasets.tasks.base import ConfigError, DatasetTask, Record, config_value
from schemas.tasks import ContextVar

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# 9 to 15 digits (E.164 allows up to 15), optionally after a +, with single separators between them;
# not an ISO date (2024-01-02 12:30 has ten digits too).
PHONE = re.compile(r"(?<![\w+])\+?(?!\d{4}-\d\d-\d\d)\d(?:[ ().-]?\d){8,14}(?!\w)")
MAX_PATTERNS = 20
MAX_PATTERN_LENGTH = 200

FIELDS = ContextVar("fields", "array", description="Top-level fields to redact; empty: every text value.")
EMAILS = ContextVar("emails", "boolean", default=True, description="Redact e-mail addresses.")
PHONES = ContextVar("phones", "boolean", default=True, description="Redact phone numbers.")
ID_PATTERNS = ContextVar(
    "idPatterns", "array", description=f"Regular expressions of ids to redact (at most {MAX_PATTERNS})."
)
REPLACEMENT = ContextVar("replacement", "string", default="[REDACTED]", description="What replaces a match.")


class Redact(DatasetTask):
    name = "redact"
    display_name = "Redact personal data"
    description = "Replaces e-mail addresses, phone numbers and ids matching patterns in every text value."
    context_vars = (FIELDS, EMAILS, PHONES, ID_PATTERNS, REPLACEMENT)

    def __init__(self, config: Mapping[str, Any]) -> None:
        fields = config_value(config, FIELDS) or []
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise ConfigError(FIELDS.name, "fields must be a list of field names")
        self.fields = frozenset(fields)
        replacement = config_value(config, REPLACEMENT)
        if not isinstance(replacement, str):
            raise ConfigError(REPLACEMENT.name, "replacement must be a string")
        self.replacement = replacement
        patterns = [p for p, wanted in ((EMAIL, EMAILS), (PHONE, PHONES)) if config_value(config, wanted)]
        patterns += _compiled(config_value(config, ID_PATTERNS) or [])
        self.patterns = tuple(patterns)

    def apply(self, record: Record) -> Record:
        return {
            key: self._redacted(value) if not self.fields or key in self.fields else value
            for key, value in record.items()
        }

    def _redacted(self, value: Any) -> Any:
        if isinstance(value, str):
            for pattern in self.patterns:
                value = pattern.sub(self.replacement, value)
            return value
        if isinstance(value, list):
            return [self._redacted(item) for item in value]
        if isinstance(value, dict):
            return {key: self._redacted(item) for key, item in value.items()}
        return value


def _compiled(patterns: Any) -> list[re.Pattern[str]]:
    if not isinstance(patterns, list) or len(patterns) > MAX_PATTERNS:
        raise ConfigError(ID_PATTERNS.name, f"idPatterns must be a list of at most {MAX_PATTERNS} patterns")
    compiled = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern or len(pattern) > MAX_PATTERN_LENGTH:
            raise ConfigError(ID_PATTERNS.name, f"each id pattern is 1-{MAX_PATTERN_LENGTH} characters")
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise ConfigError(ID_PATTERNS.name, f"invalid regular expression: {exc.msg}") from None
    return compiled
