"""`OneHopRoute`: a blocking endpoint still runs off the event loop, as FastAPI documents it, in one hop to a
worker thread, and FastAPI still reads its parameters, return model and docstring."""

from __future__ import annotations

import threading
from typing import Annotated

import pytest
from fastapi import FastAPI, Query
from fastapi.testclient import TestClient
from pydantic import BaseModel

from orchestrator.api.routing import api_router
from tests.conftest import thread_hops

pytestmark = pytest.mark.unit


class Answer(BaseModel):
    thread: str
    n: int


def _app() -> tuple[FastAPI, dict[str, str]]:
    seen: dict[str, str] = {}
    router = api_router(prefix="/v1")

    @router.get("/blocking", response_model=Answer)
    def blocking(n: Annotated[int, Query(ge=1)]) -> Answer:
        """Reads the way endpoints read PostgreSQL: blocking."""
        seen["endpoint"] = threading.current_thread().name
        return Answer(thread=threading.current_thread().name, n=n)

    @router.get("/coroutine")
    async def coroutine() -> dict[str, str]:
        seen["coroutine"] = threading.current_thread().name
        return {"ok": "yes"}

    app = FastAPI()
    app.include_router(router)
    return app, seen


def test_a_blocking_endpoint_runs_in_a_worker_thread_in_one_hop() -> None:
    app, seen = _app()
    with TestClient(app) as client:
        loop_thread = client.portal.call(lambda: threading.current_thread().name)  # type: ignore[union-attr]
        with thread_hops() as hops:
            answer = client.get("/v1/blocking", params={"n": 3})
        assert answer.status_code == 200
        assert answer.json()["n"] == 3
        assert seen["endpoint"] != loop_thread
        assert len(hops) == 1
        with thread_hops() as hops:
            assert client.get("/v1/coroutine").status_code == 200
        assert hops == []
        assert seen["coroutine"] == loop_thread


def test_fastapi_still_reads_the_endpoint() -> None:
    app, _ = _app()
    with TestClient(app) as client:
        assert client.get("/v1/blocking", params={"n": 0}).status_code == 422  # its Query bound
        operation = client.get("/openapi.json").json()["paths"]["/v1/blocking"]["get"]
    assert operation["operationId"] == "blocking_v1_blocking_get"
    assert operation["description"] == "Reads the way endpoints read PostgreSQL: blocking."
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/Answer"}
