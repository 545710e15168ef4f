"""One chunk through a task: good lines out as JSONL, bad lines out with their error, each counted."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from orchestrator.datasets.lines import Chunk, Line
from orchestrator.datasets.tasks.base import BadRecord, DatasetTask, Record

Parser = Callable[[str, list[str] | None], Record]
# How much of a bad line the side file keeps: enough to find it, not a second copy of a huge line.
KEPT_TEXT = 2000
APPLY_BATCH = 1000  # records handed to a task at once


@dataclass(frozen=True)
class ChunkOutput:
    good: bytes
    bad: bytes
    good_count: int
    bad_count: int
    blank_count: int


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _blank(line: Line) -> bool:
    # An empty line holds no record: skipped, neither good nor bad.
    return line.text is not None and not line.text.strip()


def _parsed(line: Line, parse: Parser, header: list[str] | None) -> Record:
    if line.text is None:
        raise BadRecord("line too long")
    try:
        text = line.text.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRecord("line is not UTF-8 text") from None
    return parse(text.rstrip("\r\n"), header)


def records(chunk: Chunk, parse: Parser, header: list[str] | None) -> Iterator[Record]:
    """The chunk's records that parse, skipping blank and bad lines: what a task learns from."""
    for line in chunk.lines:
        if not _blank(line):
            try:
                yield _parsed(line, parse, header)
            except BadRecord:
                continue


def _bad(line: Line, exc: Exception) -> tuple[int, str]:
    if isinstance(exc, BadRecord):
        kept = (line.text or b"")[:KEPT_TEXT].decode("utf-8", errors="replace").rstrip("\r\n")
        return line.number, _dumps({"line": line.number, "error": str(exc), "text": kept})
    # The task's own error on data it did not expect: named by type, the data not echoed.
    return line.number, _dumps({"line": line.number, "error": f"task error ({type(exc).__name__})"})


def transform(chunk: Chunk, parse: Parser, header: list[str] | None, task: DatasetTask) -> ChunkOutput:
    parsed: list[tuple[Line, Record]] = []
    bad: list[tuple[int, str]] = []
    blank = 0
    for line in chunk.lines:
        if _blank(line):
            blank += 1
            continue
        try:
            parsed.append((line, _parsed(line, parse, header)))
        except BadRecord as exc:
            bad.append(_bad(line, exc))
    good: list[str] = []
    # A batch's outputs are turned into text before the next batch is applied: what a task adds to a
    # record (an embedding's floats, say) is held for one batch, not for the whole chunk.
    for start in range(0, len(parsed), APPLY_BATCH):
        batch = parsed[start : start + APPLY_BATCH]
        outputs = task.apply_many([record for _, record in batch])
        for (line, _), output in zip(batch, outputs, strict=True):
            if isinstance(output, Exception):
                bad.append(_bad(line, output))
            else:
                good.append(_dumps(output))
    bad.sort()  # the side file in line order, whether parsing or the task found the line bad
    return ChunkOutput(
        good="".join(f"{g}\n" for g in good).encode(),
        bad="".join(f"{b}\n" for _, b in bad).encode(),
        good_count=len(good),
        bad_count=len(bad),
        blank_count=blank,
    )
