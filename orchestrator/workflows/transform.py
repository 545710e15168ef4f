"""The `transform` tool's data work: pluck a field from each element, then aggregate. Deterministic."""

from __future__ import annotations

from typing import Any

from schemas.workflows import TransformInput


class TransformError(ValueError):
    pass


def _numbers(values: list[Any], aggregate: str) -> list[int | float]:
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise TransformError(f"{aggregate} needs numbers")
    return values


def apply(spec: TransformInput) -> Any:
    value = spec.value
    if spec.pluck is not None:
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise TransformError("pluck needs a list of objects")
        value = [item.get(spec.pluck) for item in value]
    if spec.aggregate is None:
        return value
    if not isinstance(value, list):
        raise TransformError(f"{spec.aggregate} needs a list")
    match spec.aggregate:
        case "count":
            return len(value)
        case "sum":
            return sum(_numbers(value, "sum"))
        case "min" | "max" if not value:
            return None
        case "min":
            return min(_numbers(value, "min"))
        case "max":
            return max(_numbers(value, "max"))
        case "unique":
            seen: list[Any] = []
            for item in value:  # first occurrences, in order; values may be unhashable (objects)
                if item not in seen:
                    seen.append(item)
            return seen
        case "first":
            return value[0] if value else None
        case "last":
            return value[-1] if value else None
    raise TransformError(f"unknown aggregate {spec.aggregate}")  # pragma: no cover
