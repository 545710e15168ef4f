"""The client's pure parts: error answers mapped to their exception types, and the SSE frame parser."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import ValidationError

from orchestrator.client import errors
from orchestrator.client.protocol import StreamCursor, poll_delays, submit_body

EVENT = {"position": 7, "version": 2, "type": "RunStarted", "data": {}, "recorded_at": "2026-12-02T12:00:00Z"}


def _answer(status: int, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(body).encode(), headers=headers)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, errors.Unauthorized),
        (404, errors.NotFound),
        (409, errors.Conflict),
        (413, errors.PayloadTooLarge),
        (400, errors.ApiError),
        (500, errors.ServerError),
    ],
)
def test_each_status_has_its_type_with_detail_and_code(status: int, kind: type[errors.ApiError]) -> None:
    error = errors.error_for(_answer(status, {"detail": "said so", "error_code": "some_code"}))
    assert type(error) is kind
    assert (error.status, error.detail, error.error_code) == (status, "said so", "some_code")


def test_a_422_carries_its_validation_errors() -> None:
    body = {"detail": [{"loc": ["body", "params", "duration"], "msg": "too small", "type": "greater_than"}]}
    error = errors.error_for(_answer(422, body))
    assert isinstance(error, errors.ValidationFailed)
    assert [e.loc for e in error.errors] == [["body", "params", "duration"]]
    assert "body.params.duration: too small" in str(error)


def test_retry_after_is_read_and_a_body_that_is_not_json_still_gives_a_detail() -> None:
    limited = errors.error_for(_answer(429, {"detail": "slow down"}, {"Retry-After": "3"}))
    assert isinstance(limited, errors.RateLimited) and limited.retry_after == 3.0
    down = errors.error_for(httpx.Response(503, content=b"<html>proxy</html>"))
    assert isinstance(down, errors.ServiceUnavailable) and down.retry_after == 1.0
    assert down.detail == "<html>proxy</html>"


def test_the_stream_cursor_reads_frames_skips_heartbeats_and_remembers_the_last_id() -> None:
    cursor = StreamCursor()
    lines = [": heartbeat", "", "id: 7", "event: RunStarted", f"data: {json.dumps(EVENT)}", ""]
    found = [event for line in lines if (event := cursor.feed(line)) is not None]
    assert [e.position for e in found] == [7] and cursor.last_event_id == "7" and not cursor.finished
    assert cursor.headers()["Last-Event-ID"] == "7"
    final = {**EVENT, "position": 9, "type": "RunSucceeded"}
    half = json.dumps(final, indent=1).split("\n")  # data split over several `data:` lines
    for line in ["id: 9", *(f"data: {part}" for part in half)]:
        assert cursor.feed(line) is None
    last = cursor.feed("")
    assert last is not None and last.type == "RunSucceeded" and cursor.finished


def test_wait_polls_quickly_first_and_then_at_most_the_interval() -> None:
    delays = poll_delays(longest=0.5)
    assert [next(delays) for _ in range(6)] == [0.05, 0.1, 0.2, 0.4, 0.5, 0.5]


def test_a_submission_carries_its_priority_and_not_before_and_refuses_bad_ones_before_sending() -> None:
    at = datetime(2030, 1, 1, tzinfo=UTC)
    body = submit_body("sleep", None, None, None, None, priority=3, not_before=at)
    assert (body["priority"], datetime.fromisoformat(body["not_before"])) == (3, at)
    assert "priority" not in submit_body("sleep", None, None, None, None)  # defaults stay off the wire
    with pytest.raises(ValidationError):
        submit_body("sleep", None, None, None, None, priority=10)
