"""What a dataset task is: a named, published transformation of one record into one record.

A task is configured once per run from its context variables (refusing a bad configuration with
`ConfigError`, which the API reports as a 422 on that variable) and then applied to every record; a
record it cannot transform raises `BadRecord`, which makes that line a bad line, not a failed run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from schemas.tasks import ContextVar

Record = dict[str, Any]


class ConfigError(ValueError):
    def __init__(self, variable: str, message: str) -> None:
        super().__init__(message)
        self.variable = variable
        self.message = message


class BadRecord(ValueError):
    """This record cannot be transformed; the message is written beside the line in the side file."""


class DatasetTask(ABC):
    name: ClassVar[str]
    display_name: ClassVar[str]
    description: ClassVar[str]
    context_vars: ClassVar[tuple[ContextVar, ...]]

    @abstractmethod
    def __init__(self, config: Mapping[str, Any]) -> None:
        """Check and keep the configuration; raise ConfigError naming the variable at fault."""

    @abstractmethod
    def apply(self, record: Record) -> Record:
        """The output record for one input record; BadRecord when there is none."""

    def apply_many(self, records: Sequence[Record]) -> list[Record | Exception]:
        """Each record's output, or the error that made it a bad line, in order. A task that works on many
        records at once (one model call per chunk rather than per line) overrides this."""
        outputs: list[Record | Exception] = []
        for record in records:
            try:
                outputs.append(self.apply(record))
            except (TypeError, ValueError, RecursionError) as exc:  # BadRecord is a ValueError
                # A task meeting data it did not expect: that line is bad, the run goes on.
                outputs.append(exc)
        return outputs


def config_value(config: Mapping[str, Any], var: ContextVar) -> Any:
    """The variable's value, or its default: the API resolved the context, a direct submission may not."""
    return config.get(var.name, var.default)
