"""`orchestrator limits set/show`: an operator sets a tenant's limits in the database, the API shows them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.settings import Settings
from tests.services import settings_env


def test_limits_set_from_the_cli_are_the_ones_the_api_shows(
    settings: Settings, app_client: TestClient, make_key: Callable[[str], str]
) -> None:
    tenant = f"cli-limits-{uuid.uuid4().hex[:8]}"
    runner, env = CliRunner(), settings_env(settings)
    command = ["limits", "set", "--tenant", tenant, "--max-running", "3", "--kind", "sleep=2"]
    done = runner.invoke(app, command, env=env)
    assert done.exit_code == 0, done.output
    shown = runner.invoke(app, ["limits", "show", "--tenant", tenant, "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    view = json.loads(shown.stdout)
    assert (view["max_running"], view["per_kind"], view["running"]) == (3, {"sleep": 2}, {})
    api = app_client.get("/v1/limits", headers={"Authorization": f"Bearer {make_key(tenant)}"}).json()
    assert api == view
    for bad in (["--kind", "sleep"], ["--kind", "nope=1"], ["--kind", "sleep=0"], ["--max-running", "-1"]):
        refused = runner.invoke(app, ["limits", "set", "--tenant", tenant, *bad], env=env)
        assert refused.exit_code == 2, (bad, refused.output)
    unchanged = runner.invoke(app, ["limits", "show", "--tenant", tenant, "--json"], env=env)
    assert json.loads(unchanged.stdout) == view
    table = runner.invoke(app, ["limits", "show", "--tenant", tenant], env=env)
    assert table.exit_code == 0 and "sleep" in table.stdout and "3 (own)" in table.stdout, table.output
