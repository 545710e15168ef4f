"""Records and corpora through the API in process, over the real database, and `records load` over HTTP."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from orchestrator.cli import app as cli
from orchestrator.settings import Settings
from orchestrator.store.schema import records
from tests.services import serving


def _record(i: int, **extra: object) -> dict[str, object]:
    return {"external_id": f"r{i}", "text": f"text {i}", "field_id": "f", "source_type": "ticket", **extra}


def test_a_batch_is_upserted_by_external_id(app_client: TestClient, auth: dict[str, str]) -> None:
    first = app_client.post("/v1/records", json={"records": [_record(i) for i in range(3)]}, headers=auth)
    assert first.status_code == 200, first.text
    assert first.json() == {"inserted": 3, "updated": 0}
    again = [_record(1, text="changed"), _record(3)]
    second = app_client.post("/v1/records", json={"records": again}, headers=auth)
    assert second.json() == {"inserted": 1, "updated": 1}
    page = app_client.get("/v1/records", headers=auth).json()
    by_id = {r["external_id"]: r for r in page["data"]}
    assert by_id["r1"]["text"] == "changed" and by_id["r1"]["version"] == 2
    assert by_id["r0"]["version"] == 1 and by_id["r0"]["source_id"] == ""


def test_json_lines_are_taken_and_a_bad_line_is_named(app_client: TestClient, auth: dict[str, str]) -> None:
    body = "\n".join(json.dumps(_record(i)) for i in range(4)) + "\n\n"
    ndjson = {**auth, "Content-Type": "application/x-ndjson"}
    response = app_client.post("/v1/records", content=body, headers=ndjson)
    assert response.json() == {"inserted": 4, "updated": 0}
    bad = json.dumps(_record(9)) + "\n" + json.dumps({"external_id": "x"}) + "\n"
    refused = app_client.post("/v1/records", content=bad, headers=ndjson)
    assert refused.status_code == 422
    assert all(item["loc"][:2] == ["body", "line 2"] for item in refused.json()["detail"])
    listed = app_client.get("/v1/records", headers=auth).json()["data"]
    assert "r9" not in {r["external_id"] for r in listed}  # nothing of a refused body is kept


def test_more_than_ten_thousand_records_are_refused(app_client: TestClient, auth: dict[str, str]) -> None:
    body = {"records": [_record(i) for i in range(10_001)]}
    assert app_client.post("/v1/records", json=body, headers=auth).status_code == 422


def test_ten_thousand_records_are_one_statement(
    app_client: TestClient, auth: dict[str, str], engine: Engine, tenant: str
) -> None:
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "INSERT INTO records" in statement:
            statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        body = {"records": [_record(i, metadata={"n": i}) for i in range(10_000)]}
        response = app_client.post("/v1/records", json=body, headers=auth)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert response.json() == {"inserted": 10_000, "updated": 0}
    assert len(statements) == 1
    with engine.connect() as conn:
        total = conn.execute(
            sa.select(sa.func.count()).select_from(records).where(records.c.tenant_id == tenant)
        ).scalar_one()
    assert total == 10_000


def test_filters_and_keyset_pages(app_client: TestClient, auth: dict[str, str]) -> None:
    batch = [_record(i, source_id="s1" if i % 2 else "", corpus_key="c" if i < 3 else None) for i in range(7)]
    app_client.post("/v1/records", json={"records": batch}, headers=auth)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2, "source_id": ""}
        if cursor:
            params["cursor"] = cursor
        page = app_client.get("/v1/records", params=params, headers=auth).json()
        seen += [r["external_id"] for r in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["r0", "r2", "r4", "r6"]
    corpus = app_client.get("/v1/records", params={"corpus_key": "c"}, headers=auth).json()["data"]
    assert [r["external_id"] for r in corpus] == ["r0", "r1", "r2"]
    foreign = app_client.get("/v1/records", params={"cursor": "AAAA", "source_id": ""}, headers=auth)
    assert foreign.status_code == 422


def test_records_of_another_tenant_are_invisible(
    app_client: TestClient, auth: dict[str, str], make_key: Callable[[str], str]
) -> None:
    app_client.post("/v1/records", json={"records": [_record(1)]}, headers=auth)
    other = {"Authorization": f"Bearer {make_key(f'tenant-{uuid.uuid4().hex[:10]}')}"}
    assert app_client.get("/v1/records", headers=other).json()["data"] == []
    # The same external id in another tenant is another record.
    assert (
        app_client.post("/v1/records", json={"records": [_record(1)]}, headers=other).json()["inserted"] == 1
    )


def test_corpora_have_numeric_ids_and_unique_keys(app_client: TestClient, auth: dict[str, str]) -> None:
    created = app_client.post(
        "/v1/corpora", json={"key": "docs", "name": "Docs", "filter_attributes": ["lang"]}, headers=auth
    )
    assert created.status_code == 201, created.text
    corpus = created.json()
    assert (
        isinstance(corpus["id"], int) and corpus["key"] == "docs" and corpus["filter_attributes"] == ["lang"]
    )
    again = app_client.post("/v1/corpora", json={"key": "docs", "name": "Again"}, headers=auth)
    assert again.status_code == 409 and "docs" in again.json()["detail"]
    assert app_client.get("/v1/corpora", headers=auth).json()["data"] == [corpus]


@pytest.fixture(scope="module")
def served(settings: Settings, engine: Engine) -> Iterator[str]:
    with serving(settings, engine) as url:
        yield url


def test_records_load_posts_a_file_in_batches(
    served: str, auth: dict[str, str], app_client: TestClient, tmp_path: Path
) -> None:
    key = auth["Authorization"].removeprefix("Bearer ")
    lines = tmp_path / "records.jsonl"
    lines.write_text("\n".join(json.dumps(_record(i)) for i in range(25)) + "\n")
    args = ["records", "load", "--url", served, "--key", key, "--batch-size", "10"]
    result = CliRunner().invoke(cli, [*args, str(lines)])
    assert result.exit_code == 0, result.output
    assert "25 inserted, 0 updated" in result.output
    table = tmp_path / "records.csv"
    table.write_text(
        'external_id,text,field_id,source_type,lang\nr1,hello,f,ticket,en\nc9,"a, b",f,ticket,fr\n'
    )
    result = CliRunner().invoke(cli, [*args, str(table)])
    assert "1 inserted, 1 updated" in result.output, result.output
    listed = app_client.get("/v1/records", params={"limit": 100}, headers=auth).json()["data"]
    by_id = {r["external_id"]: r for r in listed}
    assert by_id["c9"]["text"] == "a, b" and by_id["c9"]["metadata"] == {"lang": "fr"}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        ('{"external_id": "a", "text": "t", "field_id": "f", "source_type": "s"}\n{oops\n', ":2: not a JSON"),
        ('{"external_id": "a", "text": "t", "field_id": "f"}\n', ":1: source_type"),
    ],
)
def test_records_load_reports_a_bad_file_in_one_line(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    path = tmp_path / "in.jsonl"
    if content is not None:
        path.write_text(content)
    result = CliRunner().invoke(
        cli, ["records", "load", "--url", "http://127.0.0.1:1", "--key", "k", str(path)]
    )
    assert result.exit_code != 0
    assert expected in result.output and "Traceback" not in result.output
