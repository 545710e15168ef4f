"""The request id without services: its shape, the API middleware, and where it is picked up."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
import structlog
from celery.app.task import Context
from fastapi import FastAPI
from fastapi.testclient import TestClient

from orchestrator import correlation
from orchestrator.api.correlation import RequestId
from orchestrator.api.unhandled import CatchAll
from orchestrator.log import formatter
from orchestrator.services import _metadata
from workers.app import message_request_id


@pytest.mark.parametrize(
    "value", ["a", "0f" * 16, str(uuid.uuid4()), "01HZX3V7Q9ZP2K", "svc:web.42_b-7", "x" * 128]
)
def test_ids_that_are_taken(value: str) -> None:
    assert correlation.problem(value) is None and correlation.is_valid(value)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "empty"),
        ("x" * 129, "128"),
        ("has space", "letters"),
        ("-leading-dash", "letters"),
        ('quote"', "letters"),
        ("new\nline", "letters"),
        ("é", "letters"),
        ("a/b", "letters"),
    ],
)
def test_ids_that_are_refused_say_why(value: str, why: str) -> None:
    problem = correlation.problem(value)
    assert problem is not None and why in problem
    assert not correlation.is_valid(value)


def test_a_new_id_is_valid_and_new() -> None:
    first, second = correlation.new_id(), correlation.new_id()
    assert correlation.is_valid(first) and len(first) == 32 and first != second


def _probe_app() -> FastAPI:
    """An app whose one route reports what the request sees bound."""
    app = FastAPI()

    @app.get("/probe")
    def probe() -> dict[str, object]:  # sync: it runs in a worker thread, as most routes do
        return {"current": correlation.current(), "logged": structlog.contextvars.get_contextvars()}

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("no handler takes this")

    app.add_middleware(CatchAll)  # in the order create_app adds them
    app.add_middleware(RequestId)
    return app


def test_the_callers_id_is_bound_and_echoed() -> None:
    with TestClient(_probe_app()) as client:
        response = client.get("/probe", headers={"X-Correlation-ID": "req-123"})
    assert response.status_code == 200
    assert response.headers["x-correlation-id"] == "req-123"
    assert response.json() == {"current": "req-123", "logged": {"request_id": "req-123"}}
    assert correlation.current() is None and structlog.contextvars.get_contextvars() == {}


def test_without_the_header_each_request_gets_a_new_id() -> None:
    with TestClient(_probe_app()) as client:
        first, second = client.get("/probe"), client.get("/probe")
    ids = [r.headers["x-correlation-id"] for r in (first, second)]
    assert all(correlation.is_valid(i) and len(i) == 32 for i in ids) and ids[0] != ids[1]
    assert [r.json()["current"] for r in (first, second)] == ids


@pytest.mark.parametrize("value", ["has space", "x" * 129, "semi;colon"])
def test_an_unusable_header_is_a_422_naming_it(value: str) -> None:
    with TestClient(_probe_app()) as client:
        response = client.get("/probe", headers={"X-Correlation-ID": value})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["header", "X-Correlation-ID"] and error["type"] == "value_error"
    assert correlation.is_valid(response.headers["x-correlation-id"])  # the 422 has an id of its own


def test_the_header_sent_twice_is_a_422() -> None:
    with TestClient(_probe_app()) as client:
        response = client.get("/probe", headers=[("X-Correlation-ID", "a"), ("X-Correlation-ID", "b")])
    assert response.status_code == 422
    assert "once" in response.json()["detail"][0]["msg"]


def test_a_500_carries_the_id_too() -> None:
    with TestClient(_probe_app(), raise_server_exceptions=False) as client:
        response = client.get("/boom", headers={"X-Correlation-ID": "req-500"})
    assert response.status_code == 500 and response.headers["x-correlation-id"] == "req-500"


def test_event_metadata_records_the_bound_id_and_keeps_the_run_tree() -> None:
    root = uuid.uuid4()
    assert correlation.KEY not in _metadata("api", "t", root)
    with correlation.bound("req-9"):
        metadata = _metadata("api", "t", root)
    assert metadata[correlation.KEY] == "req-9"
    assert metadata["correlation_id"] == str(root)  # the run tree's root, as before
    assert correlation.KEY not in _metadata("api", "t", root)


def test_a_library_record_carries_the_bound_context() -> None:
    """Celery's and uvicorn's records go through the same formatter; they name the request too."""
    record = logging.LogRecord("celery.worker", logging.WARNING, __file__, 1, "task went away", None, None)
    with correlation.bound("req-lib", run_id="r1", attempt=2):
        line = json.loads(formatter().format(record))
    assert (line["request_id"], line["run_id"], line["attempt"]) == ("req-lib", "r1", 2)
    assert "request_id" not in json.loads(formatter().format(record))


def test_the_worker_reads_the_id_from_the_message_headers() -> None:
    assert message_request_id(Context({correlation.MESSAGE_HEADER: "req-7"})) == "req-7"
    assert message_request_id(Context({})) is None  # published by a relay from before
    assert message_request_id(Context({correlation.MESSAGE_HEADER: "bad id\n"})) is None
    assert message_request_id(Context({correlation.MESSAGE_HEADER: 5})) is None
