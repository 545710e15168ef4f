"""One chunk through a task: good lines out as JSONL, bad lines out with their error, each counted."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.datasets.lines import Chunk, Line
from orchestrator.datasets.tasks.base import BadRecord, DatasetTask, Record

Parser = Callable[[str, list[str] | None], Record]
# How much of a bad line the side file keeps: enough to find it, not a second copy of a huge line.
KEPT_TEXT = 2000


@dataclass(frozen=True)
class ChunkOutput:
    good: bytes
    bad: bytes
    good_count: int
    bad_count: int
    blank_count: int


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _transformed(line: Line, parse: Parser, header: list[str] | None, task: DatasetTask) -> str:
    if line.text is None:
        raise BadRecord("line too long")
    try:
        text = line.text.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRecord("line is not UTF-8 text") from None
    return _dumps(task.apply(parse(text.rstrip("\r\n"), header)))


def transform(chunk: Chunk, parse: Parser, header: list[str] | None, task: DatasetTask) -> ChunkOutput:
    good: list[str] = []
    bad: list[str] = []
    blank = 0
    for line in chunk.lines:
        if line.text is not None and not line.text.strip():
            blank += 1  # an empty line holds no record: skipped, neither good nor bad
            continue
        try:
            good.append(_transformed(line, parse, header, task))
        except BadRecord as exc:
            kept = (line.text or b"")[:KEPT_TEXT].decode("utf-8", errors="replace").rstrip("\r\n")
            bad.append(_dumps({"line": line.number, "error": str(exc), "text": kept}))
        except (TypeError, ValueError, RecursionError) as exc:
            # A task meeting data it did not expect: that line is bad, the run goes on.
            bad.append(_dumps({"line": line.number, "error": f"task error ({type(exc).__name__})"}))
    return ChunkOutput(
        good="".join(f"{g}\n" for g in good).encode(),
        bad="".join(f"{b}\n" for b in bad).encode(),
        good_count=len(good),
        bad_count=len(bad),
        blank_count=blank,
    )
