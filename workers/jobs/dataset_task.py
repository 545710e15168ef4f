"""The `dataset_task` kind: a dataset task over a feature's lines, chunk by chunk, into one result file.

Per chunk: transform it, write its parts, report progress, then record a checkpoint saying the chunk is
done (where the input stands, the counts, which attempt wrote it). The checkpoint comes last, so a crash
before it redoes that chunk and a crash after it never does: the attempt after a crash seeks past the
committed chunks and every input line lands in the result exactly once. Cancel is honoured between
chunks. A task that learns from its input (`embed`) first fits its model on a sample, stores it beside
the parts and records a checkpoint naming it before the first chunk; an attempt after a crash loads that
model rather than fitting again, so every chunk's output comes from one model. Only a run that succeeds
moves its result into place; a canceled or failed one removes its parts and leaves nothing at the result
path.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import signal
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from orchestrator.datasets.lines import Chunk, chunks, csv_header, parse_csv, parse_jsonl
from orchestrator.datasets.tasks import DATASET_TASKS
from orchestrator.datasets.tasks.base import BadRecord, ConfigError, DatasetTask, Record
from orchestrator.datasets.tasks.embed import Embed
from orchestrator.datasets.transform import Parser, records, transform
from orchestrator.storage import Storage, StorageRefused
from schemas.features import FeatureFormat
from schemas.jobs import DatasetTaskParams
from schemas.runs import ErrorCode
from workers.context import JobContext
from workers.errors import AttemptSuperseded, JobError, RetryableJobError
from workers.jobs import dataset_model
from workers.jobs.dataset_files import RunFiles
from workers.resilience import TRANSIENT


@dataclass
class Done:
    """What the committed chunks add up to: a checkpoint's data, and the state a retry resumes from."""

    chunks: int = 0
    offset: int = 0  # byte offset in the input where the next chunk starts
    next_line: int = 1
    lines_read: int = 0
    good: int = 0
    bad: int = 0
    blank: int = 0
    # [first chunk, attempt] for each attempt that wrote chunks: who wrote which part, compactly.
    writers: list[list[int]] = field(default_factory=list)
    # The model a learning task uses: the attempt that fitted and stored it (0: none) and its SHA-256.
    model_by: int = 0
    model_sha256: str = ""

    def writer_of_each_chunk(self) -> list[int]:
        spans = [*self.writers, [self.chunks, 0]]
        return [
            attempt for (first, attempt), (end, _) in itertools.pairwise(spans) for _ in range(first, end)
        ]

    def add(self, chunk: Chunk, good: int, bad: int, blank: int, attempt: int) -> None:
        if not self.writers or self.writers[-1][1] != attempt:
            self.writers.append([chunk.index, attempt])
        self.chunks, self.offset, self.next_line = chunk.index + 1, chunk.end, chunk.next_line
        self.lines_read += len(chunk.lines)
        self.good, self.bad, self.blank = self.good + good, self.bad + bad, self.blank + blank

    def counts(self) -> dict[str, int]:
        return {"line_count": self.good, "lines_read": self.lines_read, "bad_lines": self.bad}


def _task(params: DatasetTaskParams) -> DatasetTask:
    task = DATASET_TASKS.get(params.task)
    if task is None:
        raise JobError(ErrorCode.INSUFFICIENT_DATA, f"no dataset task named {params.task!r}")
    try:
        return task(params.config)
    except ConfigError as exc:
        raise JobError(
            ErrorCode.INSUFFICIENT_DATA, f"context variable {exc.variable!r}: {exc.message}"
        ) from None


def _open_input(storage: Storage, url: str) -> IO[bytes]:
    try:
        return storage.open(url)
    except FileNotFoundError:
        raise JobError(ErrorCode.INSUFFICIENT_DATA, "the feature's file does not exist") from None
    except OSError as exc:  # a store that is away for a moment: another attempt may find it back
        raise RetryableJobError(
            ErrorCode.SERVICE_UNAVAILABLE, f"storage unavailable ({type(exc).__name__})"
        ) from None


def _header(source: IO[bytes], fmt: FeatureFormat, done: Done) -> tuple[list[str] | None, Parser]:
    """The parser, and for CSV the header (read again on every attempt; it is the first line)."""
    if fmt is FeatureFormat.JSONL:
        return None, parse_jsonl
    first = source.readline()
    try:
        header = csv_header(first)
    except (BadRecord, UnicodeDecodeError):
        raise JobError(ErrorCode.INSUFFICIENT_DATA, "the CSV file has no readable header line") from None
    if done.chunks == 0:
        done.offset, done.next_line = len(first), 2
    return header, parse_csv


def run(ctx: JobContext, params: DatasetTaskParams) -> dict[str, Any]:
    task = _task(params)
    storage = Storage.from_settings(ctx.service.settings)
    try:
        url = storage.readable(ctx.tenant_id, params.input_url)
    except StorageRefused as exc:
        raise JobError(ErrorCode.INSUFFICIENT_DATA, str(exc)) from None
    files = RunFiles(storage, ctx.tenant_id, ctx.run_id)
    done = Done(**ctx.resume_from) if ctx.resume_from else Done()
    try:
        _process(ctx, params, task, storage, url, files, done)
        return _finish(ctx, params, files, done)
    except (RetryableJobError, AttemptSuperseded, *TRANSIENT):
        raise  # another attempt follows and resumes from the checkpoint: its committed parts must stay
    except Exception:
        # Canceled, failed, or crashed (which fails the run): nothing of it stays but its error file.
        files.discard_work()
        raise


def _process(
    ctx: JobContext,
    params: DatasetTaskParams,
    task: DatasetTask,
    storage: Storage,
    url: str,
    files: RunFiles,
    done: Done,
) -> None:
    with _open_input(storage, url) as source:
        header, parse = _header(source, params.input_format, done)
        if isinstance(task, Embed):
            model = _fitted_model(ctx, task, files, done, lambda: _sample(source, task, done, parse, header))
            if model is not None:
                task.use(model)
        source.seek(done.offset)
        for chunk in chunks(source, params.chunk_lines, done.offset, done.chunks, done.next_line):
            ctx.checkpoint()  # cancel between chunks
            out = transform(chunk, parse, header, task)
            files.write_part("part", chunk.index, ctx.attempt, out.good)
            if out.bad:
                files.write_part("bad", chunk.index, ctx.attempt, out.bad)
            done.add(chunk, out.good_count, out.bad_count, out.blank_count, ctx.attempt)
            ctx.progress(done.lines_read, None, done.counts())
            ctx.save_checkpoint(asdict(done))
            _drill(ctx, params, chunk)


def _sample(
    source: IO[bytes], task: Embed, done: Done, parse: Parser, header: list[str] | None
) -> list[Record]:
    """The records of the input's first `fitLines` lines: all the model learns from, so memory is bounded
    by the sample, not the input."""
    source.seek(done.offset)
    first = next(chunks(source, task.fit_lines, done.offset), None)
    return list(records(first, parse, header)) if first else []


def _fitted_model(
    ctx: JobContext, task: Embed, files: RunFiles, done: Done, sample: Callable[[], list[Record]]
) -> dataset_model.FittedTextModel | None:
    """The model fitted by whichever attempt first got this far, loaded from beside the parts; fitted now
    (and recorded in a checkpoint before any chunk is written) when no attempt has. None when an earlier
    attempt put the result in place and cleared its work before it could record its success: no chunk is
    left to embed."""
    if done.model_by:
        try:
            data = files.read_model(done.model_by)
        except FileNotFoundError:
            if files.result_exists():
                return None
            raise JobError(ErrorCode.INTERNAL_ERROR, "the run's fitted model is missing") from None
        if hashlib.sha256(data).hexdigest() != done.model_sha256:
            raise JobError(ErrorCode.INTERNAL_ERROR, "the run's fitted model does not match its checkpoint")
    else:
        texts = task.fit_texts(sample())
        try:
            data = dataset_model.fit(texts, task.dimensions, task.seed)
        except ValueError:  # no text at all, or not one word in any of them
            raise JobError(
                ErrorCode.INSUFFICIENT_DATA,
                f"no words to fit the embedder on in the first {task.fit_lines} lines "
                f"(field {task.text_field!r})",
            ) from None
        files.write_model(ctx.attempt, data)  # the model first, the checkpoint naming it last
        done.model_by, done.model_sha256 = ctx.attempt, hashlib.sha256(data).hexdigest()
        ctx.save_checkpoint(asdict(done))
    return dataset_model.FittedTextModel(data, task.dimensions)


def _drill(ctx: JobContext, params: DatasetTaskParams, chunk: Chunk) -> None:
    if ctx.attempt == 1 and params.crash_after_chunk and chunk.index + 1 == params.crash_after_chunk:
        # A real crash, as an OOM kill would do it: no cleanup, no last words.
        os.kill(os.getpid(), signal.SIGKILL)


def _finish(ctx: JobContext, params: DatasetTaskParams, files: RunFiles, done: Done) -> dict[str, Any]:
    writers = done.writer_of_each_chunk()
    total = done.good + done.bad
    errors_path = files.errors_path if done.bad else None
    if files.parts_present(writers):
        if done.bad:
            files.assemble("bad", writers, files.errors_path, ctx.attempt)
        if total and done.bad / total > params.max_bad_share:
            share, limit = f"{done.bad / total:.2%}", f"{params.max_bad_share:.2%}"
            raise JobError(
                ErrorCode.INVALID_OUTPUT,
                f"{done.bad} of {total} lines could not be processed ({share}, above the {limit} allowed); "
                f"see {files.errors_path} in bucket {files.bucket}",
            )
        # The last cancel check: past it the result is moved into place, and a run whose result is at
        # the final path must not be canceled.
        ctx.checkpoint()
        files.assemble("part", writers, files.result_path, ctx.attempt)
        files.discard_work()
    elif not files.result_exists():
        # Parts gone and no result: a crash between the two cannot do that, so something removed them.
        raise JobError(ErrorCode.INTERNAL_ERROR, "the run's intermediate parts are missing")
    return {
        "task": params.task,
        "feature_id": params.feature_id,
        "result_bucket": files.bucket,
        "result_file_path": files.result_path,
        "errors_file_path": errors_path,
        **done.counts(),
        "blank_lines": done.blank,
        **(
            {"model_sha256": done.model_sha256, "model_fitted_by_attempt": done.model_by}
            if done.model_by
            else {}
        ),
        "outcome": {
            "artifactName": files.result_path,
            "rendererKind": "jsonl",
            "rowCount": done.good,
            "summary": f"{params.task}: {done.good} lines written, {done.bad} bad",
        },
    }
