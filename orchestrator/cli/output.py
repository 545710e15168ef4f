"""How the CLI prints listings: JSON for scripts, or a table whose ids and cursors are never cut."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

# No real terminal is this wide; it only lifts rich's clamp so that the table's true minimum shows.
_UNBOUNDED = 100_000
_TEXT_ROOM = 30


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def print_table(columns: Sequence[str], rows: Sequence[Sequence[str]], wrap: Sequence[str] = ()) -> None:
    """A table where only the `wrap` columns (free text) may wrap; every other cell is printed whole.

    Rich fits a table to the console (80 columns when stdout is not a terminal) by cutting cells, so the
    console is made as wide as the unwrappable cells need: an id must survive a copy and paste."""
    table = Table(*columns)
    for column in table.columns:
        column.no_wrap = column.header not in wrap
        column.overflow = "fold"
    for row in rows:
        table.add_row(*row)
    console = Console()
    needed = Measurement.get(console, console.options.update(max_width=_UNBOUNDED), table).minimum
    if needed > console.width:
        # Past the terminal's edge anyway: leave the free text some room instead of one word a line.
        console = Console(width=needed + (_TEXT_ROOM if wrap else 0))
    console.print(table)
    sys.stdout.flush()
