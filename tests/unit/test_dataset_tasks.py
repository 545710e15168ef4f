"""The built-in dataset tasks and their publication, with no I/O."""

from __future__ import annotations

import pytest

from orchestrator.datasets.published import ALL_TASKS, KIND
from orchestrator.datasets.tasks import DATASET_TASKS
from orchestrator.datasets.tasks.base import BadRecord, ConfigError
from orchestrator.datasets.tasks.extract_fields import ExtractFields, parse_path
from orchestrator.datasets.tasks.redact import Redact
from schemas.tasks import resolve_context


def test_every_dataset_task_is_published_with_its_context_vars() -> None:
    assert {"redact", "extract_fields"} <= set(DATASET_TASKS)
    for name, task in DATASET_TASKS.items():
        published = ALL_TASKS[name]
        assert published.kind == KIND and published.display_name == task.display_name
        names = [var.name for var in published.context_vars]
        assert names[0] == "featureId" and set(v.name for v in task.context_vars) <= set(names)
    assert "sleep" in ALL_TASKS, "the registry's own tasks stay published"
    assert len({t.id for t in ALL_TASKS.values()}) == len(ALL_TASKS), "stable, distinct ids"


def test_redact_replaces_emails_phones_and_ids_in_every_text_value() -> None:
    task = Redact({"idPatterns": [r"\bEMP-\d{4}\b"]})
    record = {
        "text": "mail ann.lee+x@mail.example.co.uk or call +44 20 7946 0958, id EMP-1234",
        "nested": {"list": ["bob@example.com", 42, None]},
        "count": 12345678901,
    }
    out = task.apply(record)
    assert out == {
        "text": "mail [REDACTED] or call [REDACTED], id [REDACTED]",
        "nested": {"list": ["[REDACTED]", 42, None]},
        "count": 12345678901,
    }


def test_redact_is_configurable() -> None:
    record = {"a": "x@example.com 555-123-4567", "b": "y@example.com"}
    assert Redact({"fields": ["a"], "phones": False, "replacement": "*"}).apply(record) == {
        "a": "* 555-123-4567",
        "b": "y@example.com",
    }
    assert Redact({"emails": False, "phones": False}).apply(record) == record
    untouched = {"t": "version 1.2.3 on 2024-01-02 12:30, order 1234567"}
    assert Redact({}).apply(untouched) == untouched


@pytest.mark.parametrize(
    ("config", "variable"),
    [
        ({"idPatterns": ["("]}, "idPatterns"),
        ({"idPatterns": "x"}, "idPatterns"),
        ({"idPatterns": ["a"] * 21}, "idPatterns"),
        ({"fields": [1]}, "fields"),
        ({"replacement": 3}, "replacement"),
    ],
)
def test_redact_refuses_a_bad_configuration_naming_the_variable(
    config: dict[str, object], variable: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Redact(config)
    assert caught.value.variable == variable


def test_json_paths() -> None:
    assert parse_path("a.b[0][2].c") == ("a", "b", 0, 2, "c")
    assert parse_path("$.user.name") == ("user", "name")
    for bad in ("", "a..b", "a[x]", "a.[0]"):
        with pytest.raises(ValueError):
            parse_path(bad)


def test_extract_fields_makes_one_column_per_path() -> None:
    task = ExtractFields({"paths": {"who": "user.name", "first": "$.user.emails[0]", "none": "user.age"}})
    record = {"user": {"name": "Ann", "emails": ["a@x.org", "b@x.org"]}, "other": 1}
    assert task.apply(record) == {"who": "Ann", "first": "a@x.org", "none": None}
    strict = ExtractFields({"paths": {"age": "user.age"}, "required": True})
    with pytest.raises(BadRecord):
        strict.apply(record)
    for config in ({}, {"paths": {}}, {"paths": {"x": "a..b"}}, {"paths": "a"}):
        with pytest.raises(ConfigError):
            ExtractFields(config)


def test_the_published_context_resolves_defaults() -> None:
    resolved = resolve_context(ALL_TASKS["redact"], {"featureId": "f"})
    assert resolved["maxBadShare"] == 0.01 and resolved["chunkLines"] == 10_000 and resolved["emails"] is True
