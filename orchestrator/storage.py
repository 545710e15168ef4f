"""Object storage for datasets: each tenant's bucket, the URLs a tenant may read, and the file operations
a dataset run needs, all through fsspec and nothing else.

A bucket is a prefix under `ORCH_STORAGE_ROOT` (on the embedded default, a folder under the data folder).
What a tenant may name as input is the one security decision here: a URL of an allowed scheme
(`ORCH_STORAGE_SCHEMES`), and for `file://` only a path inside the tenant's own bucket or one of the
operator's shared roots (`ORCH_STORAGE_FILE_ROOTS`), symlinks and `..` resolved first. Without that a
tenant could read any file the server can (`file:///etc/passwd`) or another tenant's bucket.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit

import fsspec

from orchestrator.settings import Settings

COPY_BLOCK = 1 << 20
_SAFE_BUCKET = re.compile(r"^[a-z0-9](?:[a-z0-9._]|-(?!-)){0,62}$")
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*)://", re.IGNORECASE)


class StorageRefused(Exception):
    """A URL or path the caller may not use; the message is safe to show (it names no server path)."""


def bucket_name(tenant_id: str) -> str:
    """The tenant's bucket: its id when that is a plain name, else a digest (no `--` in plain names,
    so a digest name never equals another tenant's plain one)."""
    if _SAFE_BUCKET.match(tenant_id) and tenant_id not in (".", ".."):
        return tenant_id
    return "tenant--" + hashlib.sha256(tenant_id.encode()).hexdigest()[:24]


def _relative(path: str) -> str:
    """A path inside a bucket, normalised; one that is absolute or climbs out is refused."""
    if not path or "\x00" in path or "\\" in path:
        raise StorageRefused("invalid object path")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or path.startswith("/") or ".." in parts:
        raise StorageRefused("object paths must stay inside the bucket")
    return "/".join(parts)


def _inside(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


@dataclass(frozen=True)
class Storage:
    root: str  # fsspec URL of the folder holding every bucket, without a trailing slash
    schemes: frozenset[str]
    file_roots: tuple[str, ...]  # real paths tenants may read with file://, besides their own bucket

    @classmethod
    def from_settings(cls, settings: Settings) -> Storage:
        root = settings.storage_root or (settings.data_dir.resolve() / "buckets").as_uri()
        shared = tuple(os.path.realpath(p) for p in settings.storage_file_roots.split(",") if p.strip())
        schemes = frozenset(s.strip().lower() for s in settings.storage_schemes.split(",") if s.strip())
        return cls(root.rstrip("/"), schemes | {"file"}, shared)

    # ---- names ------------------------------------------------------------------------------------
    def bucket_url(self, tenant_id: str) -> str:
        return f"{self.root}/{bucket_name(tenant_id)}"

    def object_url(self, tenant_id: str, path: str) -> str:
        return f"{self.bucket_url(tenant_id)}/{_relative(path)}"

    def readable(self, tenant_id: str, url: str) -> str:
        """`url` as the tenant may read it (file URLs by their real path), or StorageRefused."""
        if "\x00" in url or len(url) > 4096:
            raise StorageRefused("invalid URL")
        match = _SCHEME.match(url)
        if match is None:
            raise StorageRefused("the URL needs a scheme, e.g. file:// or s3://")
        scheme = match.group(1).lower()
        if scheme not in self.schemes:
            raise StorageRefused(f"URL scheme {scheme!r} is not allowed here")
        if scheme != "file":
            return url
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
            raise StorageRefused("file URLs must be file:///absolute/path")
        real = os.path.realpath(unquote(parts.path))
        own = self._local_bucket(tenant_id)
        if not _inside(real, (*((own,) if own else ()), *self.file_roots)):
            raise StorageRefused("file URLs must point inside the tenant's bucket or a shared root")
        return Path(real).as_uri()

    def _local_bucket(self, tenant_id: str) -> str | None:
        if not self.root.startswith("file://"):
            return None
        return os.path.realpath(unquote(urlsplit(self.bucket_url(tenant_id)).path))

    # ---- operations -------------------------------------------------------------------------------
    def open(self, url: str, mode: str = "rb") -> IO[bytes]:
        if "w" in mode:
            self._fs(url)[0].makedirs(self._parent(url), exist_ok=True)
        handle: IO[bytes] = fsspec.open(url, mode).open()
        return handle

    def exists(self, url: str) -> bool:
        fs, path = self._fs(url)
        return bool(fs.exists(path))

    def move(self, source: str, target: str) -> None:
        """Into place in one step where the store has one (a rename on local disks)."""
        fs, source_path = self._fs(source)
        fs.makedirs(self._parent(target), exist_ok=True)
        fs.mv(source_path, self._fs(target)[1])

    def remove(self, url: str) -> None:
        """Gone, file or folder; a missing one is not an error (cleanup runs again after a crash)."""
        fs, path = self._fs(url)
        if fs.exists(path):
            fs.rm(path, recursive=True)

    def write_stream(self, url: str, chunks: Iterator[bytes]) -> int:
        """Write an upload to a temporary name, then move it into place: readers never see half a file."""
        temporary = f"{url}.upload-{uuid.uuid4().hex}"
        size = 0
        try:
            with self.open(temporary, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    size += len(chunk)
            self.move(temporary, url)
        finally:
            self.remove(temporary)
        return size

    def read_blocks(self, url: str) -> Iterator[bytes]:
        with self.open(url) as source:
            while block := source.read(COPY_BLOCK):
                yield block

    def _fs(self, url: str) -> tuple[Any, str]:
        fs, path = fsspec.core.url_to_fs(url)
        return fs, str(path)

    def _parent(self, url: str) -> str:
        return self._fs(url)[1].rstrip("/").rsplit("/", 1)[0]
