"""Reading a dataset in chunks of lines, and turning lines into records.

Memory stays flat whatever the input's size: one chunk of lines at a time, and a line longer than
`MAX_LINE_BYTES` is skipped as a bad line without being held. Each chunk knows the byte offsets it spans,
so a run resumed after a crash seeks straight past the chunks it has already committed.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from orchestrator.datasets.tasks.base import BadRecord, Record

MAX_LINE_BYTES = 8 << 20
_SKIP_BLOCK = 1 << 16


@dataclass(frozen=True)
class Line:
    number: int  # 1-based line number in the input
    text: bytes | None  # None: longer than MAX_LINE_BYTES, not kept


@dataclass(frozen=True)
class Chunk:
    index: int  # 0-based
    start: int  # byte offset of its first line
    end: int  # byte offset just after its last line: where the next chunk starts
    lines: list[Line]

    @property
    def next_line(self) -> int:
        return self.lines[-1].number + 1


def _read_line(source: IO[bytes]) -> tuple[bytes | None, int]:
    """The next line (None when too long) and how many bytes it took; (b"", 0) at the end."""
    line = source.readline(MAX_LINE_BYTES + 1)
    if len(line) <= MAX_LINE_BYTES or line.endswith(b"\n"):
        return line, len(line)
    size = len(line)
    while True:  # skip the rest of an overlong line without holding it
        rest = source.readline(_SKIP_BLOCK)
        size += len(rest)
        if not rest or rest.endswith(b"\n"):
            return None, size


def chunks(
    source: IO[bytes], chunk_lines: int, offset: int = 0, index: int = 0, line_number: int = 1
) -> Iterator[Chunk]:
    """Chunks of up to `chunk_lines` lines, from `offset` (the `end` of the last chunk done, with the
    next chunk's `index` and first line's number). The source must be positioned at `offset`."""
    while True:
        lines: list[Line] = []
        start = offset
        while len(lines) < chunk_lines:
            text, size = _read_line(source)
            if size == 0:
                break
            offset += size
            lines.append(Line(line_number, text))
            line_number += 1
        if not lines:
            return
        yield Chunk(index, start, offset, lines)
        index += 1
        if len(lines) < chunk_lines:
            return


def parse_jsonl(text: str, header: list[str] | None = None) -> Record:
    try:
        value: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRecord(f"invalid JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(value, dict):
        raise BadRecord("a line must be a JSON object")
    return value


def parse_csv(text: str, header: list[str] | None = None) -> Record:
    assert header is not None
    rows = list(csv.reader([text]))
    values = rows[0] if rows else []
    if len(values) != len(header):
        raise BadRecord(f"expected {len(header)} fields, found {len(values)}")
    return dict(zip(header, values, strict=True))


def csv_header(line: bytes) -> list[str]:
    rows = list(csv.reader([line.decode("utf-8-sig").rstrip("\r\n")]))
    if not rows or not rows[0]:
        raise BadRecord("the CSV file has no header line")
    return rows[0]
