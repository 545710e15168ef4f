"""The `embed` dataset task's model: fitted on the task's sample, kept as bytes beside the run's parts.

It is the corpus index's text model (`vector_index.TextModel`: sublinear TF-IDF, then a seeded truncated
SVD on one BLAS thread, so the same sample and seed give the same model), stored as plain arrays in an
npz with the vocabulary as JSON bytes, never pickled: loading a model runs no code from the file. numpy
and scikit-learn are imported on the first fit or load, not with the worker, since most dataset runs
never need them.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.vector_index import TextModel

# Coordinates are written rounded: six decimals keep a vector's length within 1e-5 of 1 at any width
# here, and make a result line about half the size it is with full float reprs.
DECIMALS = 6


def fit(texts: Sequence[str], dimensions: int, seed: int) -> bytes:
    """The model fitted on `texts`, encoded; ValueError when they hold no word at all."""
    from orchestrator.vector_index import TextModel

    model, _ = TextModel.fit(texts, dimensions, seed)
    return _encode(model)


def _encode(model: TextModel) -> bytes:
    import numpy as np

    vocabulary = json.dumps(model.vocabulary, ensure_ascii=False).encode()
    arrays: dict[str, Any] = {"idf": model.idf, "vocabulary": np.frombuffer(vocabulary, dtype=np.uint8)}
    if model.components is not None:
        arrays["components"] = model.components
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _decode(data: bytes) -> TextModel:
    import numpy as np

    from orchestrator.vector_index import TextModel

    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        vocabulary = json.loads(arrays["vocabulary"].tobytes())
        components = arrays["components"] if "components" in arrays.files else None
        return TextModel(vocabulary, arrays["idf"], components)


class FittedTextModel:
    """Vectors of exactly `dimensions` coordinates from an encoded model (the `embed` task's
    `TextVectors`). Every attempt builds it from the stored bytes, the one that fitted them too, so
    chunks embedded before and after a crash use the very same arrays."""

    def __init__(self, data: bytes, dimensions: int) -> None:
        self.model = _decode(data)
        self.dimensions = dimensions

    def vectors(self, texts: Sequence[str]) -> list[list[float] | None]:
        import numpy as np

        if not texts:
            return []
        embedded = self.model.embed(texts).astype(np.float64)
        # Fewer coordinates than asked when the sample had fewer distinct words or texts than that: the
        # rest are zeros, so every line of a result has the same width and cosines are unchanged.
        padded = np.zeros((len(texts), self.dimensions))
        padded[:, : embedded.shape[1]] = embedded
        known = np.linalg.norm(padded, axis=1) > 0.5  # unit rows, or zero for a text of unknown words
        rows: list[list[float]] = np.round(padded, DECIMALS).tolist()
        return [row if ok else None for row, ok in zip(rows, known.tolist(), strict=True)]
