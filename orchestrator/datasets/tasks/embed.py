"""`embed`: each record plus a unit vector of the text at `textField`, from the default embedder.

The default embedder (TF-IDF, then truncated SVD; unit rows) must learn a vocabulary and a projection
before it can embed anything. It learns from a bounded sample, the first `fitLines` records of the input,
so memory stays flat however long the input is; then every chunk is embedded with that one model. The
worker fits, stores and reloads the model (`workers/jobs/dataset_model.py`): this package stays free of
numeric libraries, and the task only says which text a record holds and how a vector joins the record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from orchestrator.datasets.tasks.base import BadRecord, ConfigError, DatasetTask, Record, config_value
from schemas.tasks import ContextVar

MAX_DIMENSIONS = 1024
MAX_FIT_LINES = 100_000

TEXT_FIELD = ContextVar("textField", "string", default="text", description="The field holding the text.")
VECTOR_FIELD = ContextVar(
    "vectorField", "string", default="embedding", description="The field the vector is written to."
)
DIMENSIONS = ContextVar(
    "dimensions",
    "integer",
    default=64,
    description=f"Length of each vector (2-{MAX_DIMENSIONS}); trailing zeros when the sample holds fewer "
    "distinct words or lines.",
)
FIT_LINES = ContextVar(
    "fitLines",
    "integer",
    default=10_000,
    description=f"The embedder learns from this many first lines of the input (1-{MAX_FIT_LINES:,}).",
)
SEED = ContextVar(
    "seed", "integer", default=0, description="Seed of the projection: the same seed, the same vectors."
)


class TextVectors(Protocol):
    """A fitted text model: one unit vector per text, or None for a text with no word it knows."""

    def vectors(self, texts: Sequence[str]) -> list[list[float] | None]: ...


def _integer(config: Mapping[str, Any], var: ContextVar, low: int, high: int) -> int:
    value = config_value(config, var)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(var.name, f"{var.name} must be an integer from {low} to {high}")
    return value


def _field(config: Mapping[str, Any], var: ContextVar) -> str:
    value = config_value(config, var)
    if not isinstance(value, str) or not value or len(value) > 255:
        raise ConfigError(var.name, f"{var.name} must be a field name (1-255 characters)")
    return value


class Embed(DatasetTask):
    name = "embed"
    display_name = "Embed text"
    description = (
        "Adds to each record a unit vector of the text at `textField`, from the default embedder "
        "(TF-IDF + truncated SVD) fitted on the input's first `fitLines` lines."
    )
    context_vars = (TEXT_FIELD, VECTOR_FIELD, DIMENSIONS, FIT_LINES, SEED)

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.text_field = _field(config, TEXT_FIELD)
        self.vector_field = _field(config, VECTOR_FIELD)
        self.dimensions = _integer(config, DIMENSIONS, 2, MAX_DIMENSIONS)
        self.fit_lines = _integer(config, FIT_LINES, 1, MAX_FIT_LINES)
        self.seed = _integer(config, SEED, 0, 2**32 - 1)
        self.model: TextVectors | None = None

    def text(self, record: Record) -> str:
        value = record.get(self.text_field)
        if not isinstance(value, str) or not value.strip():
            raise BadRecord(f"no text at field {self.text_field!r}")
        return value

    def fit_texts(self, sample: Sequence[Record]) -> list[str]:
        """What the embedder learns from: the sample's texts, records without one left out."""
        texts = []
        for record in sample:
            try:
                texts.append(self.text(record))
            except BadRecord:
                continue
        return texts

    def use(self, model: TextVectors) -> None:
        self.model = model

    def apply(self, record: Record) -> Record:
        (output,) = self.apply_many([record])
        if isinstance(output, Exception):
            raise output
        return output

    def apply_many(self, records: Sequence[Record]) -> list[Record | Exception]:
        if self.model is None:  # a programming error, not a bad line: the worker fits before applying
            raise RuntimeError("the embed task has no fitted model yet")
        outputs: list[Record | Exception] = []
        texts: list[str] = []
        embedded: list[int] = []  # indices in `outputs` of the records whose text goes to the model
        for record in records:
            try:
                texts.append(self.text(record))
            except BadRecord as exc:
                outputs.append(exc)
                continue
            embedded.append(len(outputs))
            outputs.append(record)
        for index, vector in zip(embedded, self.model.vectors(texts), strict=True):
            if vector is None:
                outputs[index] = BadRecord("none of the text's words is in the embedder's vocabulary")
            else:
                outputs[index] = {**records[index], self.vector_field: vector}
        return outputs
