"""What the CLI's commands share: the data-dir option and settings resolved the way every role needs them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from orchestrator.log import configure as configure_logging
from orchestrator.settings import Settings, get_settings

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Embedded data folder (default: ORCH_DATA_DIR or ./.orchestrator)."),
]
err = Console(stderr=True)


def cli_settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    settings = get_settings()
    updates = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        updates["data_dir"] = data_dir
        os.environ["ORCH_DATA_DIR"] = str(data_dir)
    return settings.model_copy(update=updates)


def resolved_settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    from orchestrator.processes import embedded

    settings = cli_settings(data_dir, **overrides)
    configure_logging(settings.log_level)
    resolved, _services = embedded.resolve(settings)
    return resolved


def migrated_settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    from orchestrator.store.migrate import upgrade

    settings = resolved_settings(data_dir, **overrides)
    upgrade(settings.database_url or "")
    return settings


def engine_for(settings: Settings) -> Any:
    from orchestrator.store.engine import make_engine

    return make_engine(settings.database_url or "", pool_size=4)
