"""The four public surfaces as data: what each reference document promises, kept in the repository so the
contract tests run from a plain clone. `test_description_matches_seeds` holds these files to the documents
whenever the documents are at hand.

Each `<surface>.json` has:
- `document`: the reference page it was written from;
- `operations`: per operation its `method` and `path`, inline `query` / `path_parameters`, and the names (in
  `objects`) of its `body`, its `response` and its `error` body;
- `objects`: every JSON object the surface exchanges, as a map from field name to field;
- and where the surface has them: `auth` (the key carriers), `transitions`, `examples` (documented
  examples, verbatim, that the tests use).

A field is `{"type": T, ...}`, T one of string, integer, number, boolean, object, array, or any (the document
leaves it open). Optional keys: `required` (default true: always in a response, must be in a request),
`nullable` (the document shows null), `format` (uuid, date-time: with a UTC offset, local-date-time: without
one, int64, epoch-seconds: digits in a string), `enum`, `default`, `minimum`/`maximum`/`minLength`/
`maxLength`, `maxAgeDays`/`defaultAgeDays` (how far back an epoch filter may reach, and reaches unset),
`items` (an array's element, itself a field without `required`) and `ref` (the object that describes
an object-typed value). Loading rejects any other key, so a misspelt constraint cannot silently vanish.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from uuid import UUID

TYPES = {"string", "integer", "number", "boolean", "object", "array", "any"}
FORMATS = {"uuid", "date-time", "local-date-time", "int64", "epoch-seconds"}
_FIELD_KEYS = {
    "type",
    "required",
    "nullable",
    "format",
    "enum",
    "default",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "maxAgeDays",
    "defaultAgeDays",
    "items",
    "ref",
}
_SURFACE_KEYS = {"surface", "document", "operations", "objects", "auth", "transitions", "examples"}
_OPERATION_KEYS = {"method", "path", "query", "path_parameters", "body", "response", "error"}

Field = dict[str, Any]
Fields = dict[str, Field]


@cache
def load(name: str) -> dict[str, Any]:
    """The description of one surface (`taxonomy`, `task_runs`, `list_jobs`, `data_products`), checked."""
    description: dict[str, Any] = json.loads(
        (Path(__file__).parent / f"{name}.json").read_text(encoding="utf-8")
    )
    _validate(name, description)
    return description


def _validate(name: str, description: dict[str, Any]) -> None:
    def fail(where: str, why: str) -> None:
        raise ValueError(f"surfaces/{name}.json, {where}: {why}")

    def field(where: str, spec: Any, *, in_array: bool = False) -> None:
        if not isinstance(spec, dict) or spec.get("type") not in TYPES:
            fail(where, f"not a field of a known type: {spec!r}")
        if unknown := set(spec) - _FIELD_KEYS:
            fail(where, f"unknown keys {sorted(unknown)}")
        if in_array and "required" in spec:
            fail(where, "an array's element is not required or optional")
        if "format" in spec and spec["format"] not in FORMATS:
            fail(where, f"unknown format {spec['format']!r}")
        if "ref" in spec and spec["ref"] not in named:
            fail(where, f"refers to no object: {spec['ref']!r}")
        if "items" in spec:
            field(f"{where}[]", spec["items"], in_array=True)
        if not in_array:
            spec.setdefault("required", True)

    def fields(where: str, specs: Any) -> None:
        if not isinstance(specs, dict) or not specs:
            fail(where, "expected a map of fields")
        for key, spec in specs.items():
            field(f"{where}.{key}", spec)

    if unknown := set(description) - _SURFACE_KEYS:
        fail("top level", f"unknown keys {sorted(unknown)}")
    named = description["objects"]
    for object_name, specs in named.items():
        fields(f"objects.{object_name}", specs)
    for op_name, operation in description["operations"].items():
        where = f"operations.{op_name}"
        if unknown := set(operation) - _OPERATION_KEYS:
            fail(where, f"unknown keys {sorted(unknown)}")
        for part in ("query", "path_parameters"):
            if part in operation:
                fields(f"{where}.{part}", operation[part])
        for part in ("body", "response", "error"):
            if part in operation and operation[part] not in named:
                fail(f"{where}.{part}", f"names no object: {operation[part]!r}")
    for carrier, specs in description.get("auth", {}).items():
        fields(f"auth.{carrier}", specs)


def operation(surface: str, name: str) -> dict[str, Any]:
    return load(surface)["operations"][name]  # type: ignore[no-any-return]


def objects(surface: str) -> dict[str, Fields]:
    return load(surface)["objects"]  # type: ignore[no-any-return]


def required(fields: Mapping[str, Field]) -> set[str]:
    return {name for name, spec in fields.items() if spec["required"]}


def check_value(name: str, value: Any, spec: Field) -> None:
    """`value` (not null) is of the field's type, in its enum, in its format; an array's elements too,
    unless they are objects (`ref`), which their own object's check covers.
    """
    kind = spec["type"]
    if kind == "any":
        return
    matches = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
    }[kind]
    assert matches, f"{name}: {value!r} is not {kind}"
    if "enum" in spec:
        assert value in spec["enum"], f"{name}: {value!r} is not one of the documented values"
    fmt = spec.get("format")
    if fmt == "uuid":
        UUID(value)
    elif fmt == "date-time":
        assert datetime.fromisoformat(value).utcoffset() is not None, f"{name}: {value!r} has no offset"
    elif fmt == "local-date-time":
        assert datetime.fromisoformat(value).tzinfo is None, f"{name}: {value!r} has an offset"
    elif fmt == "epoch-seconds":
        assert value.isascii() and value.isdigit(), f"{name}: {value!r} is not epoch seconds"
    elif fmt == "int64":
        assert -(2**63) <= value < 2**63, f"{name}: {value!r} is out of int64"
    items = spec.get("items")
    if items is not None and "ref" not in items:
        for i, element in enumerate(value):
            check_value(f"{name}[{i}]", element, items)


def check_object(
    actual: Mapping[str, Any], fields: Mapping[str, Field], nullable: Collection[str] = ()
) -> None:
    """No undocumented field, every required one present, each non-null value as documented.

    Null is allowed only for the fields the document shows as null and those in `nullable` (the caller's
    reading of the document); elsewhere a field that does not apply is absent.
    """
    assert set(actual) <= set(fields), f"undocumented fields {sorted(set(actual) - set(fields))}"
    assert required(fields) <= set(actual), f"missing fields {sorted(required(fields) - set(actual))}"
    for name, value in actual.items():
        if value is None:
            assert fields[name].get("nullable") or name in nullable, f"{name} is null"
        else:
            check_value(name, value, fields[name])
