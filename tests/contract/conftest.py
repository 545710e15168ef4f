"""Fixtures the contract suites share: one `Runs` per module, and an in-process app over its settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from orchestrator.api.app import create_app
from orchestrator.settings import Settings
from tests.contract.helpers import Runs


@pytest.fixture(scope="module")
def runs(engine: Engine, settings: Settings) -> Runs:
    return Runs(engine, settings)


@pytest.fixture(scope="module")
def client(runs: Runs, engine: Engine) -> Iterator[TestClient]:
    """The app over the runs' settings: its submissions go to the same idle queues, with the same leases."""
    with TestClient(create_app(runs.settings, engine)) as c:
        yield c
