"""The chunk reader, line parsing, one chunk through a task, and the checkpoint's bookkeeping."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.datasets import lines
from orchestrator.datasets.lines import chunks, csv_header, parse_csv, parse_jsonl
from orchestrator.datasets.tasks.base import BadRecord
from orchestrator.datasets.tasks.redact import Redact
from orchestrator.datasets.transform import transform
from workers.jobs.dataset_task import Done


def _data(n: int) -> bytes:
    return b"".join(b'{"i": %d}\n' % i for i in range(n))


def test_chunks_cover_every_line_once_with_their_offsets() -> None:
    data = _data(25)
    found = list(chunks(io.BytesIO(data), 10))
    assert [len(c.lines) for c in found] == [10, 10, 5]
    assert [c.index for c in found] == [0, 1, 2]
    assert [line.number for c in found for line in c.lines] == list(range(1, 26))
    for chunk in found:
        assert data[chunk.start : chunk.end] == b"".join(line.text or b"" for line in chunk.lines)
    assert found[-1].end == len(data)


def test_a_reader_resumed_at_a_chunks_end_reads_only_what_follows() -> None:
    data = _data(25)
    first = next(chunks(io.BytesIO(data), 10))
    source = io.BytesIO(data)
    source.seek(first.end)
    rest = list(chunks(source, 10, first.end, first.index + 1, first.next_line))
    assert [c.index for c in rest] == [1, 2]
    assert [line.number for c in rest for line in c.lines] == list(range(11, 26))


@given(st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=60), st.integers(1, 9))
def test_chunking_loses_and_repeats_nothing(rows: list[bytes], size: int) -> None:
    data = b"".join(r + b"\n" for r in rows)
    found = list(chunks(io.BytesIO(data), size))
    assert b"".join(line.text or b"" for c in found for line in c.lines) == data
    assert all(len(c.lines) == size for c in found[:-1])


def test_an_exact_multiple_ends_without_an_empty_chunk_and_a_last_line_needs_no_newline() -> None:
    assert [len(c.lines) for c in chunks(io.BytesIO(_data(20)), 10)] == [10, 10]
    assert [line.text for c in chunks(io.BytesIO(b"a\nb"), 10) for line in c.lines] == [b"a\n", b"b"]
    assert list(chunks(io.BytesIO(b""), 10)) == []


def test_an_overlong_line_is_skipped_without_being_held(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lines, "MAX_LINE_BYTES", 100)
    monkeypatch.setattr(lines, "_SKIP_BLOCK", 7)
    data = b"short\n" + b"x" * 1000 + b"\nafter\n"
    found = [line for c in chunks(io.BytesIO(data), 10) for line in c.lines]
    assert [(line.number, line.text) for line in found] == [(1, b"short\n"), (2, None), (3, b"after\n")]


def test_parsers() -> None:
    assert parse_jsonl('{"a": 1}') == {"a": 1}
    for bad in ("[1]", "{", "3"):
        with pytest.raises(BadRecord):
            parse_jsonl(bad)
    header = csv_header(b"\xef\xbb\xbfname,email\r\n")
    assert header == ["name", "email"]
    assert parse_csv('"Lee, Ann",a@x.org', header) == {"name": "Lee, Ann", "email": "a@x.org"}
    with pytest.raises(BadRecord):
        parse_csv("only-one", header)


def test_a_chunk_through_a_task_splits_good_bad_and_blank_lines() -> None:
    data = b'{"t": "a@b.org"}\nnot json\n\n{"t": "\xff"}\n' + b'{"t": "ok"}\n'
    (chunk,) = chunks(io.BytesIO(data), 10)
    out = transform(chunk, parse_jsonl, None, Redact({}))
    assert (out.good_count, out.bad_count, out.blank_count) == (2, 2, 1)
    assert [json.loads(line) for line in out.good.splitlines()] == [{"t": "[REDACTED]"}, {"t": "ok"}]
    bad = [json.loads(line) for line in out.bad.splitlines()]
    assert [b["line"] for b in bad] == [2, 4] and bad[0]["text"] == "not json"
    assert "invalid JSON" in bad[0]["error"] and "UTF-8" in bad[1]["error"]


def test_the_checkpoint_knows_which_attempt_wrote_each_chunk() -> None:
    done = Done()
    for index, attempt in ((0, 1), (1, 1), (2, 2), (3, 2), (4, 3)):
        (chunk,) = chunks(io.BytesIO(_data(3)), 3)
        done.add(type(chunk)(index, 0, 10 * (index + 1), chunk.lines), 3, 0, 0, attempt)
    assert done.writers == [[0, 1], [2, 2], [4, 3]]
    assert done.writer_of_each_chunk() == [1, 1, 2, 2, 3]
    assert done.chunks == 5 and done.offset == 50 and done.lines_read == 15
    assert Done().writer_of_each_chunk() == []


def test_a_chunk_applied_in_small_batches_gives_the_same_output(monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"".join(b'{"t": "x%d@b.org"}\n' % i if i % 3 else b"not json\n" for i in range(11))
    (chunk,) = chunks(io.BytesIO(data), 20)
    whole = transform(chunk, parse_jsonl, None, Redact({}))
    monkeypatch.setattr("orchestrator.datasets.transform.APPLY_BATCH", 2)
    assert transform(chunk, parse_jsonl, None, Redact({})) == whole
    assert (whole.good_count, whole.bad_count) == (7, 4)
