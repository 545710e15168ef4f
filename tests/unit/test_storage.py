"""The storage policy: what a tenant may read, where its bucket is, and the file operations, on local disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.settings import Settings
from orchestrator.storage import Storage, StorageRefused, bucket_name


def _storage(tmp_path: Path, **settings: str) -> Storage:
    return Storage.from_settings(Settings(data_dir=tmp_path / "data", **settings))  # type: ignore[arg-type]


def test_bucket_names_are_plain_tenant_ids_or_digests() -> None:
    assert bucket_name("acme") == "acme"
    assert bucket_name("tenant-1a2b") == "tenant-1a2b"
    for odd in ("Acme", "a/b", "..", "a--b", "x" * 80, "é"):
        name = bucket_name(odd)
        assert name.startswith("tenant--") and "/" not in name
    assert bucket_name("a/b") != bucket_name("a_b")


def test_the_default_buckets_are_folders_under_the_data_folder(tmp_path: Path) -> None:
    storage = _storage(tmp_path)
    assert storage.bucket_url("acme") == (tmp_path / "data" / "buckets" / "acme").resolve().as_uri()
    assert storage.object_url("acme", "a/./b.jsonl").endswith("/buckets/acme/a/b.jsonl")


@pytest.mark.parametrize("path", ["", "/etc/passwd", "../other/x", "a/../../x", "a\\b", "a\x00b"])
def test_object_paths_cannot_leave_the_bucket(tmp_path: Path, path: str) -> None:
    with pytest.raises(StorageRefused):
        _storage(tmp_path).object_url("acme", path)


def test_a_tenant_reads_file_urls_only_in_its_bucket_or_a_shared_root(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    storage = _storage(tmp_path, storage_file_roots=f"{shared}")
    own = storage.object_url("acme", "f/data.jsonl")
    assert storage.readable("acme", own) == own
    assert storage.readable("acme", (shared / "x.csv").as_uri()) == (shared / "x.csv").resolve().as_uri()
    refused = [
        "file:///etc/passwd",
        storage.object_url("other", "f/data.jsonl"),  # another tenant's bucket
        own.replace("/acme/f/", "/acme/../other/"),  # climbing out
        own.replace("/acme/f/", "/acme/%2e%2e/other/"),  # climbing out, percent-encoded
        own.replace("file:///", "file://evil.example/"),
        f"{shared}/x.csv",  # no scheme
        "s3://bucket/key",  # scheme not allowed by default
        "http://169.254.169.254/latest",
    ]
    for url in refused:
        with pytest.raises(StorageRefused):
            storage.readable("acme", url)


def test_a_symlink_out_of_the_bucket_is_refused(tmp_path: Path) -> None:
    storage = _storage(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("s")
    bucket = Path(storage.object_url("acme", "x").removeprefix("file://")).parent
    bucket.mkdir(parents=True)
    os.symlink(secret, bucket / "link.jsonl")
    with pytest.raises(StorageRefused):
        storage.readable("acme", (bucket / "link.jsonl").as_uri())


def test_configured_schemes_are_allowed(tmp_path: Path) -> None:
    storage = _storage(tmp_path, storage_schemes="s3, memory")
    assert storage.readable("acme", "s3://bucket/key.jsonl") == "s3://bucket/key.jsonl"
    with pytest.raises(StorageRefused):
        storage.readable("acme", "gs://bucket/key.jsonl")


def test_streams_are_written_whole_then_moved_and_read_back_in_blocks(tmp_path: Path) -> None:
    storage = _storage(tmp_path)
    url = storage.object_url("acme", "up/data.jsonl")
    size = storage.write_stream(url, iter([b"a\n", b"b\n"]))
    assert size == 4 and b"".join(storage.read_blocks(url)) == b"a\nb\n"
    folder = Path(url.removeprefix("file://")).parent
    assert [p.name for p in folder.iterdir()] == ["data.jsonl"], "no temporary left behind"
    target = storage.object_url("acme", "moved/data.jsonl")
    storage.move(url, target)
    assert storage.exists(target) and not storage.exists(url)
    storage.remove(storage.object_url("acme", "moved"))
    storage.remove(storage.object_url("acme", "moved"))  # again: nothing there is not an error
    assert not storage.exists(target)
