"""What the CLI's commands share: the data-dir option, settings resolved the way every role needs them,
and `CliError`, the one way a command reports a mistake it cannot carry on from."""

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
err = Console(stderr=True, soft_wrap=True)

# Exit code of a command that could not do what it was asked (bad input, API unreachable, key refused);
# 1 stays free for "done, but the answer is no" (`runs watch` on a run that failed).
EXIT_CANNOT = 2


class CliError(Exception):
    """A mistake the user can fix: shown as one line on stderr, never as a traceback (see `main`)."""

    def __init__(self, message: str, exit_code: int = EXIT_CANNOT) -> None:
        super().__init__(" ".join(message.split()))  # one line, whatever the message was built from
        self.exit_code = exit_code


def say(message: str) -> None:
    """A plain line on stderr: no markup, no highlighting, never wrapped (paths and ids stay whole)."""
    err.print(message, markup=False, highlight=False)


def cli_settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    settings = get_settings()
    updates = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        updates["data_dir"] = data_dir
        os.environ["ORCH_DATA_DIR"] = str(data_dir)
    return settings.model_copy(update=updates)


def uses_data_dir(settings: Settings) -> bool:
    """Whether anything is read from the data folder: an embedded server or the local signing secret."""
    return not (settings.database_url and settings.redis_url and settings.secret_key)


def announce_data_dir(settings: Settings) -> None:
    # Said only when the folder is really used: `up` exports the URLs and the secret to its roles,
    # which then stay quiet, and so does a role run against real servers.
    if uses_data_dir(settings):
        say(f"data folder: {settings.data_dir.resolve()}")


def resolved_settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    from orchestrator.processes import embedded, stale

    settings = cli_settings(data_dir, **overrides)
    configure_logging(settings.log_level)
    announce_data_dir(settings)
    try:
        resolved, _services = embedded.resolve(settings)
    except stale.StaleServerError as exc:
        raise CliError(str(exc)) from None
    return resolved


def migrated_settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    from orchestrator.store.migrate import upgrade

    settings = resolved_settings(data_dir, **overrides)
    upgrade(settings.database_url or "")
    return settings


def engine_for(settings: Settings) -> Any:
    from orchestrator.store.engine import make_engine

    return make_engine(settings.database_url or "", pool_size=4)
