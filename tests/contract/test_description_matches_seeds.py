"""The surface descriptions (surfaces/*.json) against the reference documents they were written from.

The documents sit beside the repository, in ../shared/seeds, in the workspace where the project is built; a
clone has no such folder, and the contract tests need only the descriptions. When the folder is there, each
document is parsed again here and must still say what its description says, so an edit on either side that
the other does not follow fails here instead of drifting. Documents are read and parsed inside the tests, so
one this code cannot read fails a test and never the collection.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.contract import surfaces

SEEDS = Path(__file__).resolve().parents[3] / "shared" / "seeds"

if not SEEDS.is_dir():
    pytest.skip(
        f"no reference documents at {SEEDS} (a clone without ../shared): the contract tests run from their "
        "descriptions in tests/contract/surfaces alone; only this cross-check needs the documents",
        allow_module_level=True,
    )

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
OPERATION_RE = re.compile(r"^\s*(GET|POST)(/\S+)\s*$", re.MULTILINE)


@cache
def seed(name: str) -> str:
    return (SEEDS / name).read_text(encoding="utf-8")


def document(surface: str) -> str:
    return seed(surfaces.load(surface)["document"])


def between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


def expanded(surface: str, spec: surfaces.Field) -> surfaces.Field:
    """A field with every `ref` replaced by the fields of the object it names, as a document nests them."""
    objects = surfaces.objects(surface)
    out = copy.deepcopy(spec)
    if "ref" in out:
        out["fields"] = expanded_object(surface, objects[out.pop("ref")])
    if "items" in out:
        out["items"] = expanded(surface, out["items"])
    return out


def expanded_object(surface: str, fields: surfaces.Fields) -> surfaces.Fields:
    return {name: expanded(surface, spec) for name, spec in fields.items()}


def shape(name: str, sample: Any, *, element: bool = False) -> surfaces.Field:
    """What a documented example value says of its field: JSON type, nested fields, uuid or date-time."""
    spec: surfaces.Field
    if name == "default" and sample == {}:
        spec = {"type": "any"}  # data-products renders a context variable's untyped default as {}
    elif isinstance(sample, dict):
        spec = {"type": "object"}
        if sample:
            spec["fields"] = {key: shape(key, value) for key, value in sample.items()}
    elif isinstance(sample, list):
        spec = {"type": "array", "items": shape(name, sample[0], element=True)}
    elif isinstance(sample, bool):
        spec = {"type": "boolean"}
    elif isinstance(sample, int):
        spec = {"type": "integer"}
    elif isinstance(sample, float):
        spec = {"type": "number"}
    else:
        spec = {"type": "string"}
        if UUID_RE.fullmatch(sample):
            spec["format"] = "uuid"
        elif re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", sample):
            offset = datetime.fromisoformat(sample).utcoffset()
            spec["format"] = "local-date-time" if offset is None else "date-time"
    if not element:
        spec["required"] = True
    return spec


# Taxonomy (000): a rendered reference page of `name: [optional ]type` lines.


@dataclass
class DocField:
    name: str
    type: str
    optional: bool
    formats: list[str] = field(default_factory=list)
    enum: list[str] = field(default_factory=list)
    bounds: dict[str, int] = field(default_factory=dict)


def taxonomy_fields(section: str) -> dict[str, DocField]:
    """`name: [optional ]type` lines, then `formatX`, `minimumN`/`maxLengthN`, and quoted enum values."""
    fields: dict[str, DocField] = {}
    current: DocField | None = None
    for line in (raw.strip() for raw in section.splitlines()):
        if m := re.fullmatch(r"(\w+): (optional )?(.+)", line):
            current = fields[m[1]] = DocField(m[1], m[3], bool(m[2]))
        elif current and (m := re.fullmatch(r"format([\w-]+)", line)):
            current.formats.append(m[1])
        elif current and (m := re.fullmatch(r"(minimum|maximum|minLength|maxLength)(\d+)", line)):
            current.bounds[m[1]] = int(m[2])
        elif current and (m := re.fullmatch(r'"(\w+)"', line)):
            current.enum.append(m[1])
    return fields


def taxonomy_field(doc: DocField) -> surfaces.Field:
    """The page's words in the descriptions' terms: `number` `formatint64` is an integer, `map` an object."""
    spec: surfaces.Field
    if doc.enum:
        spec = {"type": "string", "enum": doc.enum}
    elif doc.type in ("string", "number"):
        spec = {"type": "integer" if doc.type == "number" and "int64" in doc.formats else doc.type}
    elif doc.type.startswith("map["):
        spec = {"type": "object"}
    else:
        raise AssertionError(f"{doc.name}: type {doc.type!r} is new to this parser")
    assert len(doc.formats) <= 1, doc
    if doc.formats:
        spec["format"] = doc.formats[0]
    return {**spec, "required": not doc.optional, **doc.bounds}


def test_taxonomy_fields_enums_and_bounds() -> None:
    text = document("taxonomy")
    query = taxonomy_fields(between(text, "Query ParametersExpand", "ReturnsExpand"))
    returned = taxonomy_fields(between(text, "ReturnsExpand", "List taxonomy runs"))
    envelope = returned.pop("data")
    # "Run { id, cluster_count, created_at, 16 more }": the parser must have found all 19.
    shown = re.fullmatch(r"array of Run \{ (.+), (\d+) more \}", envelope.type)
    assert shown is not None and len(returned) == len(shown[1].split(", ")) + int(shown[2])

    operation = surfaces.operation("taxonomy", "list_runs")
    assert OPERATION_RE.findall(text) == [(operation["method"], operation["path"])]
    assert operation["query"] == {name: taxonomy_field(spec) for name, spec in query.items()}
    run = {name: taxonomy_field(spec) for name, spec in returned.items()}
    listing = {"data": {"type": "array", "required": True, "items": {"type": "object", "fields": run}}}
    response = surfaces.objects("taxonomy")[operation["response"]]
    assert expanded_object("taxonomy", response) == listing


def test_taxonomy_transitions_and_example() -> None:
    text = document("taxonomy")
    allowed = re.search(r"Allowed transitions are (.+?)\.\n", text)
    assert allowed is not None
    pairs = re.findall(r"(\w+) -> ([\w|]+)", allowed[1])
    assert surfaces.load("taxonomy")["transitions"] == {src: dst.split("|") for src, dst in pairs}
    example = json.JSONDecoder().raw_decode(text, text.index("{", text.index("Returns Examples")))[0]
    run = surfaces.objects("taxonomy")["run"]
    for item in example["data"]:
        assert set(item) == set(run)  # the example shows every field, optional ones too
        surfaces.check_object(item, run)


# Task runs (002): fixed-width tables rendered as `nameTypeRequiredDescription` runs of text.

TABLE_TYPES = {"String": "string", "Integer": "integer", "Array": "array"}


def task_runs_table(section: str) -> list[tuple[str, str, str]]:
    """Rows of a `FieldTypeRequiredDescription` table: `run_idString-Run ID` as (name, type, required)."""
    return re.findall(r"^\s*([a-z_]+)(String|Integer|Array)(-|Optional|Required)", section, re.MULTILINE)


def task_runs_example(text: str) -> dict[str, Any]:
    """The response example, less its `// (Omitted)` line and the trailing comma it leaves."""
    example = between(text, "The response example is as follows:", "JSON")
    return json.loads(re.sub(r",\s*//[^\n]*", "", example))  # type: ignore[no-any-return]


def test_task_runs_fields_statuses_and_example() -> None:
    text = document("task_runs")
    example = task_runs_example(text)
    [sample] = example["runs"]
    page_rows = task_runs_table(between(text, "Response body", "The following describes runs."))
    run_rows = task_runs_table(between(text, "The following describes runs.", "Response status codes"))
    statuses = re.search(r"• (registered(?: \| \w+)+)", text)
    assert statuses is not None and len(run_rows) == 13

    # The Required column says nothing ("-"); the example shows every field, so each is always there.
    assert {required for _, _, required in page_rows + run_rows} == {"-"}
    run: surfaces.Fields = {}
    for name, kind, _ in run_rows:
        if sample[name] is None:
            run[name] = {"type": TABLE_TYPES[kind], "required": True, "nullable": True}
        else:
            run[name] = shape(name, sample[name])
            assert run[name]["type"] == TABLE_TYPES[kind], (name, sample[name])
    run["status"]["enum"] = statuses[1].split(" | ")
    page = {name: {"type": TABLE_TYPES[kind], "required": True} for name, kind, _ in page_rows}
    page["runs"]["items"] = {"type": "object", "fields": run}

    operation = surfaces.operation("task_runs", "list_task_runs")
    response = surfaces.objects("task_runs")[operation["response"]]
    assert expanded_object("task_runs", response) == page
    assert list(response) == list(page) and list(surfaces.objects("task_runs")["run"]) == list(run)
    assert surfaces.load("task_runs")["examples"][operation["response"]] == example


def test_task_runs_paging_and_path() -> None:
    text = document("task_runs")
    query = between(text, "Request query parameters", "Request example")
    rows = task_runs_table(query)
    index_default = re.search(r"Default: (\d+)", query)
    limit = re.search(r"(\d+)-(\d+) \(default: (\d+)\)", query)
    assert index_default is not None and limit is not None
    assert [(name, kind, required) for name, kind, required in rows] == [
        ("index", "Integer", "Optional"),
        ("limit", "Integer", "Optional"),
    ]
    expected = {
        "index": {"type": "integer", "required": False, "default": int(index_default[1])},
        "limit": {
            "type": "integer",
            "required": False,
            "minimum": int(limit[1]),
            "maximum": int(limit[2]),
            "default": int(limit[3]),
        },
    }
    operation = surfaces.operation("task_runs", "list_task_runs")
    assert operation["query"] == expected
    # The page names `GET /task-runs`; its example URL, which the service answers, puts it under /api/v1.
    [(method, documented)] = OPERATION_RE.findall(text)
    served = re.search(r"https://[^/\s]+(/[^?'\s]+)", text)
    assert served is not None and (method, served[1]) == (operation["method"], operation["path"])
    assert operation["path"].endswith(documented)


# List jobs (003): a rendered protobuf-style page; the request's names come from the seeds README.


def _unique(found: list[str]) -> list[str]:
    return list(dict.fromkeys(found))


def test_list_jobs_enums_and_reply() -> None:
    text = document("list_jobs")
    objects = surfaces.objects("list_jobs")
    job, status, reply = objects["job"], objects["status"], objects["jobList"]
    assert job["type"]["enum"] == _unique(re.findall(r"\bJOB__\w+", text))
    assert job["state"]["enum"] == _unique(re.findall(r"\bJOB_STATE__\w+", text))
    codes = re.findall(r"(?:\[|, )([A-Z][A-Z0-9_]+)", between(text, "status object[]", "Default value"))
    assert status["code"]["enum"] == codes and len(codes) > 100

    example = json.JSONDecoder().raw_decode(text, text.index('{\n"status"'))[0]
    bare = {"type", "items"}  # what an example can show: JSON types, not formats, enums or presence

    def types_only(spec: surfaces.Field) -> surfaces.Field:
        kept = {key: value for key, value in spec.items() if key in bare}
        if "items" in kept:
            kept["items"] = types_only(kept["items"])
        if "fields" in spec:
            kept["fields"] = {name: types_only(inner) for name, inner in spec["fields"].items()}
        return kept

    whole = types_only({"type": "object", "fields": expanded_object("list_jobs", reply)})
    assert whole == types_only(shape("reply", example))

    # "Epoch (secs) when the job was started. Not set if the job hasn't started yet."
    stamps = re.findall(r"Epoch \(secs\) when the job (?:was )?\w+\.( Not set)?", text)
    ts_fields = [name for name in example["job"][0] if name.startswith("ts")]
    assert len(stamps) == len(ts_fields) == 3
    readme = " ".join(seed("README.md").split())  # its prose wraps anywhere
    assert "list-jobs `ts*` are epoch seconds as strings, absent when not set" in readme
    for name, not_set in zip(ts_fields, stamps, strict=True):
        assert job[name]["format"] == "epoch-seconds" and job[name]["required"] == (not not_set), name


def test_list_jobs_filters_and_path() -> None:
    text = document("list_jobs")
    note = " ".join(between(seed("README.md"), "**list-jobs request names.**", "\n- ").split())
    max_results = re.search(r"Maximum results to return\. Max allowed value is (\d+)\.", text)
    days = re.search(r"Max allowed value is (\d+) days ago\. Default is (\d+) days\.", text)
    default = re.search(r"If not set, (JOB_STATE__\w+) and (JOB_STATE__\w+) are returned", text)
    assert max_results is not None and days is not None and default is not None
    assert "Default states when `state` is absent: queued and started." in note
    states = _unique(re.findall(r"\bJOB_STATE__\w+", text))

    def field_from(kind: str) -> surfaces.Field:
        if kind == "string":
            return {"type": "string"}
        if kind == "array of integers":
            return {"type": "array", "items": {"type": "integer"}}
        if kind == "array of `JOB_STATE__*`":
            return {"type": "array", "items": {"type": "string", "enum": states}}
        assert kind.startswith("integer"), kind
        return {"type": "integer"}

    named = re.findall(r"`(\w+)` \(([^()]+)\)", note)
    filters = {name: {**field_from(kind), "required": False} for name, kind in named}
    assert "at most 100" in dict(named)["numResults"] and int(max_results[1]) == 100
    filters["numResults"]["maximum"] = int(max_results[1])
    filters["epochSecs"] |= {"maxAgeDays": int(days[1]), "defaultAgeDays": int(days[2])}
    filters["state"]["default"] = [default[1], default[2]]

    operation = surfaces.operation("list_jobs", "list_jobs")
    assert surfaces.objects("list_jobs")[operation["body"]] == filters
    assert list(surfaces.objects("list_jobs")[operation["body"]]) == list(filters)
    assert OPERATION_RE.findall(text) == [(operation["method"], operation["path"])]


# Data products (001): a rendered FastAPI reference; parameters as `name?type`, examples as JSON.

PARAMETER_GROUPS = re.compile(
    r"(Query Parameters|Path Parameters|Header Parameters|Cookie Parameters|Request Body\napplication/json)"
)
PARAMETER = re.compile(
    r'([A-Za-z_][\w-]*)([*?])(\||[a-z]*)(?:\nFormat\n([a-z-]+))?(?:\nDefault\n("[^"]*"|true|false|-?\d+))?'
)
CURL = re.compile(r'curl -X (\w+) "https://loading(/[^"]+)"(?: \\ -H "[^"]*" \\ -d \'([^\']*)\')?')


@dataclass
class Operation:
    method: str
    path: str
    parameters: dict[str, surfaces.Fields]  # by group: query, path, header, cookie, body
    request: Any
    response: Any
    error: Any


def data_products_operations(text: str) -> dict[str, Operation]:
    """Each operation's section: title, parameter groups, the curl line, then its 200 and 422 examples."""
    titles = list(re.finditer(r"(?:^|\n|\})([A-Z][A-Za-z ]+)\n(?=(?:Query|Path|Header) Parameters\n)", text))
    decoder = json.JSONDecoder()
    found: dict[str, Operation] = {}
    for here, after in zip(titles, [*titles[1:], None], strict=True):
        section = text[here.start(1) : after.start(1) if after else len(text)]
        request_part = section.split("Response Body", 1)[0]
        groups: dict[str, surfaces.Fields] = {}
        pieces = PARAMETER_GROUPS.split(request_part)
        for group, content in zip(pieces[1::2], pieces[2::2], strict=True):
            assert PARAMETER.sub("", content).strip() == "", f"unread text in {here[1]}: {content!r}"
            params: surfaces.Fields = {}
            for name, marker, kind, fmt, default in PARAMETER.findall(content):
                spec: surfaces.Field = {"type": kind if kind not in ("", "|") else "any"}
                spec["required"] = marker == "*"
                if fmt:
                    spec["format"] = fmt
                if default:
                    spec["default"] = json.loads(default)
                params[name] = spec
            groups[group.split()[0].lower()] = params
        curl = CURL.search(section)
        assert curl is not None, here[1]
        response, end = decoder.raw_decode(section, curl.end())
        error, _ = decoder.raw_decode(section, end)
        path = UUID_RE.sub("{run_id}", curl[2])
        request = json.loads(curl[3]) if curl[3] else None
        name = here[1].lower().replace(" ", "_")
        found[name] = Operation(curl[1], path, groups, request, response, error)
    return found


def test_data_products_operations_and_parameters() -> None:
    described = surfaces.load("data_products")
    documented = data_products_operations(document("data_products"))
    assert list(documented) == list(described["operations"])
    for name, op in documented.items():
        spec = described["operations"][name]
        assert (op.method, op.path) == (spec["method"], spec["path"]), name
        assert op.parameters.pop("header") == described["auth"]["headers"], name
        assert op.parameters.pop("cookie") == described["auth"]["cookies"], name
        assert op.parameters.pop("query", None) == spec.get("query"), name
        assert op.parameters.pop("path", None) == spec.get("path_parameters"), name
        body = op.parameters.pop("request", None)
        assert body == (described["objects"][spec["body"]] if "body" in spec else None), name
        assert op.parameters == {}, name
        if op.request is not None:
            surfaces.check_object(op.request, described["objects"][spec["body"]])


def test_data_products_objects_match_the_examples() -> None:
    described = surfaces.load("data_products")
    for name, op in data_products_operations(document("data_products")).items():
        spec = described["operations"][name]
        if op.response is None:  # the event stream: its page shows no JSON body
            assert "response" not in spec, name
        else:
            fields = expanded_object("data_products", described["objects"][spec["response"]])
            assert {"type": "object", "required": True, "fields": fields} == shape(name, op.response), name
        error = expanded_object("data_products", described["objects"][spec["error"]])
        assert {"type": "object", "required": True, "fields": error} == shape(name, op.error), name
