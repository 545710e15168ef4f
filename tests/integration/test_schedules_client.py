"""The typed client's schedule methods over real HTTP, blocking and asyncio alike."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from sqlalchemy.engine import Engine

from orchestrator.client import AsyncClient, Client, NotFound, ScheduleCreateRequest, ValidationFailed
from orchestrator.settings import Settings
from tests.services import serving

pytestmark = pytest.mark.integration


def test_the_clients_manage_a_schedule(
    settings: Settings, engine: Engine, make_key: Callable[[str], str], tenant: str
) -> None:
    key = make_key(tenant)
    request = ScheduleCreateRequest(name="nightly", cron="0 2 * * *", kind="sleep", missed="catch_up_one")
    with serving(settings, engine) as url, Client(url, key) as client:
        made = client.create_schedule(request)
        assert (made.cron, made.missed, made.enabled) == ("0 2 * * *", "catch_up_one", True)
        assert [s.id for s in client.schedules()] == [made.id]
        assert client.set_schedule_enabled(made.id, False).next_due_at is None
        with pytest.raises(ValidationFailed):
            client.create_schedule(request.model_copy(update={"cron": "99 * * * *"}))

        async def from_async() -> None:
            async with AsyncClient(url, key) as aio:
                assert (await aio.get_schedule(made.id)).enabled is False
                assert (await aio.set_schedule_enabled(made.id, True)).next_due_at is not None
                await aio.delete_schedule(made.id)

        asyncio.run(from_async())
        with pytest.raises(NotFound):
            client.get_schedule(made.id)
