"""`orchestrator serve` with one more route, which raises: the unhandled-error path through real uvicorn.

Run as `python -m tests.faults.raising_api` with the role's environment; the exception's message holds
SQL text and the key in LEAK_PROBE, so a log line that printed it would show both.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI

import orchestrator.api.app as api_app
from orchestrator.cli import app as cli

_create_app = api_app.create_app


def _with_a_failing_route(*args: Any, **kwargs: Any) -> FastAPI:
    app = _create_app(*args, **kwargs)
    leak = os.environ.get("LEAK_PROBE", "")

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError(f"boom [SQL: SELECT digest FROM api_keys WHERE key = '{leak}']")

    @app.get("/boom-async")
    async def boom_async() -> None:
        raise LookupError(f"async boom {leak}")

    return app


if __name__ == "__main__":
    api_app.create_app = _with_a_failing_route  # `serve` imports it when it runs
    cli(["serve"], prog_name="orchestrator")
