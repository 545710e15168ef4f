"""`orchestrator schedules ...`: an operator adds, pauses, resumes and removes a tenant's schedule in the
database; the API shows the same schedule."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.settings import Settings
from tests.services import settings_env


def test_a_schedule_added_from_the_cli_is_the_one_the_api_shows(
    settings: Settings, app_client: TestClient, make_key: Callable[[str], str]
) -> None:
    tenant = f"cli-schedules-{uuid.uuid4().hex[:8]}"
    runner, env = CliRunner(), settings_env(settings)
    base = ["--tenant", tenant]
    add = ["schedules", "add", *base, "--name", "n", "--cron", "0 3 * * *", "--kind", "sleep", "--json"]
    done = runner.invoke(app, [*add, "--label", "team=ops", "--missed", "catch_up_one"], env=env)
    assert done.exit_code == 0, done.output
    made = json.loads(done.stdout)
    assert (made["labels"], made["missed"], made["enabled"]) == ({"team": "ops"}, "catch_up_one", True)
    headers = {"Authorization": f"Bearer {make_key(tenant)}"}
    assert app_client.get(f"/v1/schedules/{made['id']}", headers=headers).json() == made

    for bad in (["--cron", "* * *"], ["--kind", "nope"], ["--missed", "sometimes"], ["--params", "[1"]):
        command = ["schedules", "add", *base, "--name", "n", "--cron", "0 3 * * *", "--kind", "sleep", *bad]
        refused = runner.invoke(app, command, env=env)
        assert refused.exit_code == 2, (bad, refused.output)

    paused = runner.invoke(app, ["schedules", "pause", made["id"], *base, "--json"], env=env)
    assert paused.exit_code == 0 and json.loads(paused.stdout)["enabled"] is False, paused.output
    resumed = runner.invoke(app, ["schedules", "resume", made["id"], *base, "--json"], env=env)
    assert json.loads(resumed.stdout)["enabled"] is True
    listed = runner.invoke(app, ["schedules", "list", *base, "--json"], env=env)
    assert [s["id"] for s in json.loads(listed.stdout)] == [made["id"]]
    table = runner.invoke(app, ["schedules", "show", made["id"], *base], env=env)
    assert table.exit_code == 0 and "0 3 * * *" in table.stdout, table.output

    assert runner.invoke(app, ["schedules", "rm", made["id"], *base], env=env).exit_code == 0
    gone = runner.invoke(app, ["schedules", "show", made["id"], *base], env=env)
    assert gone.exit_code == 2
    elsewhere = runner.invoke(app, ["schedules", "rm", made["id"], "--tenant", "someone-else"], env=env)
    assert elsewhere.exit_code == 2
