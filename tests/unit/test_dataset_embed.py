"""The `embed` dataset task on small inputs: its configuration, its vectors, its bad lines, and an attempt
after a crash embedding with the model the first attempt stored, not a new one."""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast
from uuid import uuid4

import numpy as np
import pytest

from orchestrator.datasets.lines import chunks, parse_csv, parse_jsonl
from orchestrator.datasets.published import ALL_TASKS
from orchestrator.datasets.tasks.base import ConfigError
from orchestrator.datasets.tasks.embed import Embed
from orchestrator.datasets.transform import ChunkOutput, transform
from orchestrator.storage import Storage
from workers.context import JobContext
from workers.errors import JobError
from workers.jobs import dataset_model
from workers.jobs.dataset_files import RunFiles
from workers.jobs.dataset_task import Done, _fitted_model

PETS = [
    "the cat chased the mouse around the garden",
    "a kitten and a cat sleep in the garden sun",
    "the dog and the cat play in the garden",
]
MARKETS = [
    "stock markets fell as investors sold shares",
    "bond yields rose and stock markets fell",
    "investors bought shares as stock prices rose",
]


def _fitted(task: Embed, texts: list[str]) -> Embed:
    task.use(dataset_model.FittedTextModel(dataset_model.fit(texts, task.dimensions, 0), task.dimensions))
    return task


def _embedded(texts: list[str], task: Embed) -> ChunkOutput:
    _fitted(task, texts)
    data = b"".join(json.dumps({"n": i, "text": t}).encode() + b"\n" for i, t in enumerate(texts))
    (chunk,) = chunks(io.BytesIO(data), len(texts) + 1)
    return transform(chunk, parse_jsonl, None, task)


def _vectors(out: ChunkOutput, field: str = "embedding") -> np.ndarray[Any, Any]:
    return np.array([json.loads(line)[field] for line in out.good.splitlines()])


def test_embed_is_published_with_its_context_vars_and_defaults() -> None:
    published = ALL_TASKS["embed"]
    names = {var.name: var.default for var in published.context_vars}
    assert published.kind == "dataset_task" and names["featureId"] is None
    assert {k: names[k] for k in ("textField", "vectorField", "dimensions", "fitLines", "seed")} == {
        "textField": "text",
        "vectorField": "embedding",
        "dimensions": 64,
        "fitLines": 10_000,
        "seed": 0,
    }


@pytest.mark.parametrize(
    ("config", "variable"),
    [
        ({"dimensions": 1}, "dimensions"),
        ({"dimensions": True}, "dimensions"),
        ({"fitLines": 0}, "fitLines"),
        ({"fitLines": 100_001}, "fitLines"),
        ({"textField": ""}, "textField"),
        ({"vectorField": 3}, "vectorField"),
        ({"seed": -1}, "seed"),
    ],
)
def test_a_bad_configuration_names_the_variable(config: dict[str, object], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Embed(config)
    assert caught.value.variable == variable


def test_each_record_keeps_its_fields_and_gains_a_unit_vector_of_the_asked_width() -> None:
    out = _embedded([*PETS, *MARKETS], Embed({"dimensions": 16}))
    records = [json.loads(line) for line in out.good.splitlines()]
    assert [(r["n"], r["text"]) for r in records] == list(enumerate([*PETS, *MARKETS]))
    vectors = _vectors(out)
    # Six texts hold fewer than 16 directions: the missing ones are zeros, every line as wide as asked.
    assert vectors.shape == (6, 16)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_similar_texts_are_closer_than_dissimilar_ones_and_the_same_text_gets_the_same_vector() -> None:
    texts = [*PETS, *MARKETS, PETS[0]]
    vectors = _vectors(_embedded(texts, Embed({"dimensions": 16})))
    cosine = vectors @ vectors.T
    assert np.array_equal(vectors[0], vectors[6]), "same text, same vector"
    within = min(cosine[i, j] for group in ((0, 1, 2), (3, 4, 5)) for i in group for j in group)
    across = max(cosine[i, j] for i in (0, 1, 2) for j in (3, 4, 5))
    assert within > across, (within, across)


def test_the_same_sample_and_seed_fit_the_same_model() -> None:
    texts = [f"{a} {b}" for a in PETS for b in MARKETS]
    assert dataset_model.fit(texts, 4, seed=7) == dataset_model.fit(texts, 4, seed=7)
    assert dataset_model.fit(texts, 4, seed=7) != dataset_model.fit(texts, 4, seed=8)


def test_lines_without_text_or_with_only_unknown_words_are_bad_lines() -> None:
    task = _fitted(Embed({"dimensions": 16, "textField": "body", "vectorField": "v"}), PETS)
    data = (
        b'{"body": "the cat in the garden"}\n{"body": ""}\n{"other": "cat"}\n{"body": 42}\n'
        b'{"body": "zebra quokka"}\n\n{"body": "a dog"}\n'
    )
    (chunk,) = chunks(io.BytesIO(data), 10)
    out = transform(chunk, parse_jsonl, None, task)
    assert (out.good_count, out.bad_count, out.blank_count) == (2, 4, 1)
    assert _vectors(out, "v").shape == (2, 16)
    bad = [json.loads(line) for line in out.bad.splitlines()]
    assert [b["line"] for b in bad] == [2, 3, 4, 5]
    assert [b["error"] for b in bad[:3]] == ["no text at field 'body'"] * 3
    assert "vocabulary" in bad[3]["error"] and bad[3]["text"] == '{"body": "zebra quokka"}'


def test_a_csv_column_is_embedded_too() -> None:
    task = _fitted(Embed({"dimensions": 16}), PETS)
    (chunk,) = chunks(io.BytesIO(b'1,"the cat, the dog"\n2,garden\n'), 10)
    out = transform(chunk, parse_csv, ["id", "text"], task)
    assert [json.loads(line)["id"] for line in out.good.splitlines()] == ["1", "2"]


def test_the_task_refuses_to_embed_before_it_has_a_model() -> None:
    with pytest.raises(RuntimeError):
        Embed({}).apply({"text": "cat"})


class _Checkpoints:
    """What `_fitted_model` needs of a job context: the attempt, and checkpoints kept here."""

    def __init__(self, attempt: int) -> None:
        self.attempt = attempt
        self.saved: list[dict[str, Any]] = []

    def save_checkpoint(self, data: dict[str, Any]) -> None:
        self.saved.append(data)


def test_an_attempt_after_a_crash_embeds_with_the_stored_model_not_a_new_fit(tmp_path: Path) -> None:
    files = RunFiles(Storage(tmp_path.as_uri(), frozenset({"file"}), ()), "t", uuid4())
    task = Embed({"dimensions": 8})
    first = _Checkpoints(attempt=1)
    model = _fitted_model(cast(JobContext, first), task, files, Done(), lambda: [{"text": t} for t in PETS])
    assert model is not None and len(first.saved) == 1
    checkpoint = first.saved[0]
    assert checkpoint["model_by"] == 1 and checkpoint["chunks"] == 0, "recorded before any chunk"

    # The retry resumes from that checkpoint: it loads the stored model and reads no sample at all.
    def other_sample() -> list[dict[str, Any]]:
        raise AssertionError("the retry must not read a sample to fit again")

    second = _Checkpoints(attempt=2)
    resumed = _fitted_model(cast(JobContext, second), task, files, Done(**checkpoint), other_sample)
    assert resumed is not None and second.saved == []
    probe = [*PETS, "the cat"]
    assert resumed.vectors(probe) == model.vectors(probe)

    tampered = Done(**{**checkpoint, "model_sha256": "0" * 64})
    with pytest.raises(JobError, match="does not match"):
        _fitted_model(cast(JobContext, second), task, files, tampered, other_sample)
    files.discard_work()
    with pytest.raises(JobError, match="missing"):
        _fitted_model(cast(JobContext, second), task, files, Done(**checkpoint), other_sample)
    assert asdict(Done(**checkpoint)) == checkpoint, "the checkpoint round-trips through Done"


def test_a_sample_without_words_is_insufficient_data(tmp_path: Path) -> None:
    files = RunFiles(Storage(tmp_path.as_uri(), frozenset({"file"}), ()), "t", uuid4())
    ctx = cast(JobContext, _Checkpoints(attempt=1))
    with pytest.raises(JobError) as caught:
        _fitted_model(ctx, Embed({}), files, Done(), lambda: [{"text": "a"}, {"other": "x"}])
    assert caught.value.code == "insufficient_data" and "first 10000 lines" in str(caught.value)
