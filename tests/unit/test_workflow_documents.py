"""Workflow documents and their references, with no I/O: what a save refuses, and how inputs resolve."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from orchestrator.workflows.templates import resolve
from schemas.templates import TemplateError
from schemas.workflows import WorkflowDocument

SCOPE = {
    "context": {"region": "eu", "n": 3, "tags": ["a", "b"]},
    "steps": {"fan": {"children": ["c1", "c2"], "count": 2}},
}


def doc(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"steps": list(steps)}


SPAWN = {"key": "fan", "tool": "spawn", "input": {"task": "sleep", "count": 2, "context": {"duration": 0}}}
JOIN = {"key": "wait", "tool": "join", "input": {"step": "fan"}}


def test_a_whole_reference_keeps_its_type_and_text_gets_text() -> None:
    assert resolve("{{ context.n }}", SCOPE) == 3
    assert resolve({"x": ["{{steps.fan.children[1]}}"]}, SCOPE) == {"x": ["c2"]}
    assert (
        resolve("region {{ context.region }}, tags {{ context.tags }}", SCOPE) == 'region eu, tags ["a", "b"]'
    )
    assert resolve("no references", SCOPE) == "no references" and resolve(7, SCOPE) == 7


def test_references_left_for_later_stay_verbatim() -> None:
    value = {"who": "{{ item }}", "at": "#{{ index }} in {{ context.region }}"}
    assert resolve(value, SCOPE, keep=frozenset({"item", "index"})) == {
        "who": "{{ item }}",
        "at": "#{{ index }} in eu",
    }
    assert resolve(value, {"item": {"id": 1}, "index": 4, **SCOPE}) == {"who": {"id": 1}, "at": "#4 in eu"}


@pytest.mark.parametrize(
    "template",
    ["{{ context.missing }}", "{{ steps.fan.children[5] }}", "{{ context.n.deeper }}", "{{ env.HOME }}"],
)
def test_a_reference_to_nothing_is_an_error_not_a_guess(template: str) -> None:
    with pytest.raises(TemplateError):
        resolve(template, SCOPE)


def test_nothing_is_evaluated() -> None:
    # Text that looks like code is not a reference at all, and a malformed one is refused.
    assert resolve("{{ __import__('os') }}x", SCOPE) == "{{ __import__('os') }}x"
    with pytest.raises(ValidationError, match="malformed reference"):
        WorkflowDocument.model_validate(
            doc({"key": "a", "tool": "transform", "input": {"value": "{{ 1 + 1 }}"}})
        )


def test_a_good_document_validates() -> None:
    parsed = WorkflowDocument.model_validate(
        doc(
            SPAWN,
            JOIN,
            {
                "key": "total",
                "tool": "transform",
                "input": {"value": "{{ steps.wait.results }}", "aggregate": "count"},
            },
            {
                "key": "nap",
                "tool": "task",
                "input": {"task": "sleep", "context": {"duration": 0}},
                "continue_on_error": True,
            },
        )
    )
    assert [s.key for s in parsed.steps] == ["fan", "wait", "total", "nap"] and parsed.steps[
        3
    ].continue_on_error


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (doc(), "at least 1"),
        (doc(SPAWN, SPAWN), "repeats"),
        (doc({"key": "a", "tool": "shell", "input": {}}), "tool"),
        (doc({"key": "Bad Key", "tool": "transform", "input": {"value": 1}}), "key"),
        (doc(JOIN), "not an earlier spawn"),
        (doc({"key": "a", "tool": "transform", "input": {"value": "{{ steps.b }}"}}), "not a step before"),
        (doc({"key": "a", "tool": "transform", "input": {"value": "{{ item }}"}}), "only known inside"),
        (doc({"key": "a", "tool": "transform", "input": {}}), "value"),
        (doc({**SPAWN, "input": {"task": "sleep"}}), "exactly one of count and items"),
        (doc({**SPAWN, "input": {"task": "sleep", "count": 0}}), "count"),
        (doc({"key": "a", "tool": "join", "input": {"step": "fan", "extra": 1}}), "extra"),
        (
            doc(*[{"key": f"s{i}", "tool": "transform", "input": {"value": i}} for i in range(101)]),
            "at most 100",
        ),
    ],
)
def test_bad_documents_are_refused_with_a_reason(document: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        WorkflowDocument.model_validate(document)
    assert message in str(caught.value)
