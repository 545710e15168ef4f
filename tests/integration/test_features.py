"""`/v1/features`: registering a file by URL (only where the tenant may read), uploading one into the
tenant's bucket, listing them per tenant; and the upload's own size cap."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from orchestrator.api.app import create_app
from orchestrator.settings import Settings
from orchestrator.storage import Storage


def _put(settings: Settings, tenant: str, path: str, data: bytes) -> str:
    storage = Storage.from_settings(settings)
    url = storage.object_url(tenant, path)
    storage.write_stream(url, iter([data]))
    return url


def test_a_file_in_the_tenants_bucket_is_registered_and_listed(
    app_client: TestClient, auth: dict[str, str], settings: Settings, tenant: str
) -> None:
    url = _put(settings, tenant, "in/people.csv", b"name,email\nann,a@example.com\n")
    created = app_client.post("/v1/features", json={"name": "people", "url": url}, headers=auth)
    assert created.status_code == 201, created.text
    feature = created.json()
    assert feature["name"] == "people" and feature["format"] == "csv" and feature["url"] == url
    listed = app_client.get("/v1/features", headers=auth).json()
    assert listed["total"] == 1 and listed["data"][0]["id"] == feature["id"]


def test_urls_a_tenant_may_not_read_are_refused(
    app_client: TestClient,
    auth: dict[str, str],
    settings: Settings,
    tenant: str,
    make_key: Callable[[str], str],
) -> None:
    other = f"other-{uuid.uuid4().hex[:8]}"
    theirs = _put(settings, other, "in/data.jsonl", b"{}\n")
    mine = Storage.from_settings(settings).object_url(tenant, "in/missing.jsonl")
    for url in ("file:///etc/passwd", theirs, "s3://bucket/x.jsonl", "relative/path.jsonl", mine):
        answer = app_client.post("/v1/features", json={"name": "x", "url": url}, headers=auth)
        assert answer.status_code == 422, (url, answer.text)
        detail = answer.json()["detail"]
        assert detail[0]["loc"] == ["body", "url"] and str(settings.data_dir) not in answer.text
    assert app_client.get("/v1/features", headers=auth).json()["total"] == 0
    # The owner of the file registers it; the first tenant still sees none of it.
    owner = {"Authorization": f"Bearer {make_key(other)}"}
    registered = app_client.post("/v1/features", json={"name": "x", "url": theirs}, headers=owner)
    assert registered.status_code == 201
    assert app_client.get("/v1/features", headers=auth).json() == {"data": [], "total": 0}


def test_bad_bodies_are_422(app_client: TestClient, auth: dict[str, str]) -> None:
    for body in (b"{", b'{"name": "x"}', b'{"name": "x", "url": "file:///a", "extra": 1}', b"[]"):
        answer = app_client.post(
            "/v1/features", content=body, headers={**auth, "content-type": "application/json"}
        )
        assert answer.status_code == 422 and isinstance(answer.json()["detail"], list), body


def test_an_upload_is_stored_in_the_tenants_bucket(
    app_client: TestClient, auth: dict[str, str], settings: Settings, tenant: str
) -> None:
    data = b"".join(b'{"n": %d}\n' % i for i in range(5000))
    answer = app_client.post(
        "/v1/features",
        files={"file": ("../../evil name.jsonl", data, "application/octet-stream")},
        data={"name": "numbers"},
        headers=auth,
    )
    assert answer.status_code == 201, answer.text
    feature = answer.json()
    assert feature["name"] == "numbers" and feature["format"] == "jsonl"
    bucket = Path(Storage.from_settings(settings).bucket_url(tenant).removeprefix("file://"))
    stored = Path(feature["url"].removeprefix("file://"))
    assert stored.is_relative_to(bucket) and stored.read_bytes() == data
    assert stored.name == "evil_name.jsonl"
    missing = app_client.post("/v1/features", files={"other": ("a", b"x")}, headers=auth)
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "file"]


def test_uploads_have_their_own_cap(settings: Settings, engine: Engine, auth: dict[str, str]) -> None:
    capped = settings.model_copy(update={"upload_max_bytes": 10_000})
    with TestClient(create_app(capped, engine)) as client:
        small = client.post("/v1/features", files={"file": ("a.jsonl", b"{}\n" * 100)}, headers=auth)
        assert small.status_code == 201, small.text
        big = client.post("/v1/features", files={"file": ("a.jsonl", b"{}\n" * 10_000)}, headers=auth)
        assert big.status_code == 413 and big.json()["error_code"] == "payload_too_large"
        # Multipart elsewhere is not an upload: the JSON guards still apply there.
        other = client.post("/v1/runs", files={"file": ("a", b"\x00" * 100)}, headers=auth)
        assert other.status_code == 422
