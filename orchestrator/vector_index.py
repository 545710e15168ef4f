"""A corpus's vector index on disk: built by the rebuild job, loaded by the query route.

The text model is TF-IDF reduced by truncated SVD to unit vectors; the index is faiss' exact inner-product
search (cosine on unit vectors) keyed by record id, so a filter is a set of allowed record ids. A version
is written under temporary names and renamed into place, the model before the index: a reader that sees
an index file of a version also finds its model, and never a half-written file. The model is stored as
plain arrays and JSON, never pickled, so loading an index runs no code from the file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import faiss
import numpy as np
from numpy.typing import NDArray
from scipy.sparse import spmatrix
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize
from threadpoolctl import threadpool_limits

BATCH = 5000


class IndexMissing(Exception):
    """No index of that version is on disk (never built here, or the data folder is another)."""


def corpus_dir(data_dir: Path, tenant_id: str, corpus_id: int) -> Path:
    # Tenant ids are free text: a digest makes them safe path components.
    tenant = hashlib.sha256(tenant_id.encode()).hexdigest()[:24]
    return data_dir / "vector-indexes" / tenant / f"corpus-{corpus_id}"


@dataclass(frozen=True)
class TextModel:
    vocabulary: dict[str, int]
    idf: NDArray[np.float64]
    components: NDArray[np.float64] | None  # None: the vocabulary is too small to reduce

    @classmethod
    def fit(cls, texts: Sequence[str], dimensions: int, seed: int) -> tuple[TextModel, spmatrix]:
        vectorizer = TfidfVectorizer(sublinear_tf=True)
        matrix = vectorizer.fit_transform(texts)
        vocabulary = {str(term): int(i) for term, i in vectorizer.vocabulary_.items()}
        components = None
        if matrix.shape[1] > dimensions:
            with threadpool_limits(limits=1):
                svd = TruncatedSVD(dimensions, random_state=seed).fit(matrix)
            components = np.asarray(svd.components_, dtype=np.float64)
        return cls(vocabulary, np.asarray(vectorizer.idf_, dtype=np.float64), components), matrix

    def _vectorizer(self) -> TfidfVectorizer:
        vectorizer = TfidfVectorizer(sublinear_tf=True, vocabulary=self.vocabulary)
        vectorizer.idf_ = self.idf
        return vectorizer

    def project(self, matrix: spmatrix) -> NDArray[np.float32]:
        dense = matrix @ self.components.T if self.components is not None else matrix.toarray()
        return np.ascontiguousarray(normalize(np.asarray(dense)), dtype=np.float32)

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        return self.project(self._vectorizer().transform(texts))


def build(
    texts: Sequence[str],
    record_ids: Sequence[int],
    dimensions: int,
    seed: int,
    after_batch: Callable[[int], None],
) -> tuple[TextModel, faiss.Index]:
    """Fit the text model on every text, then embed and add them in batches (`after_batch(done)` after
    each: the job's progress and cancel point)."""
    model, matrix = TextModel.fit(texts, dimensions, seed)
    width = model.components.shape[0] if model.components is not None else matrix.shape[1]
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(int(width)))
    ids = np.asarray(record_ids, dtype=np.int64)
    for start in range(0, len(texts), BATCH):
        stop = min(start + BATCH, len(texts))
        index.add_with_ids(model.project(matrix[start:stop]), ids[start:stop])
        after_batch(stop)
    return model, index


def _replace(path: Path, write: Callable[[Path], object]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(temporary)
    os.replace(temporary, path)  # atomic on one file system: readers see the old file or the new one


def save(directory: Path, version: str, model: TextModel, index: faiss.Index) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    meta = {"vocabulary": model.vocabulary, "has_components": model.components is not None}

    def write_model(path: Path) -> None:
        with path.open("wb") as handle:
            if model.components is None:
                np.savez(handle, idf=model.idf)
            else:
                np.savez(handle, idf=model.idf, components=model.components)

    _replace(directory / f"{version}.json", lambda p: p.write_text(json.dumps(meta)))
    _replace(directory / f"{version}.npz", write_model)
    _replace(directory / f"{version}.faiss", lambda p: faiss.write_index(index, str(p)))


def load(directory: Path, version: str) -> tuple[TextModel, faiss.Index]:
    try:
        index = faiss.read_index(str(directory / f"{version}.faiss"))
        meta = json.loads((directory / f"{version}.json").read_text())
        with np.load(directory / f"{version}.npz", allow_pickle=False) as arrays:
            components = arrays["components"] if meta["has_components"] else None
            model = TextModel(meta["vocabulary"], arrays["idf"], components)
    except (OSError, RuntimeError, KeyError, ValueError):
        raise IndexMissing(version) from None
    return model, index


# Versions are never rewritten in place, so a loaded one stays right for as long as it is kept.
load_cached = lru_cache(maxsize=8)(load)


def search(
    model: TextModel, index: faiss.Index, text: str, k: int, allowed: Sequence[int] | None = None
) -> list[tuple[int, float]]:
    """(record id, cosine score) of the `k` nearest records, best first; only `allowed` ids if given."""
    query = model.embed([text])
    params = None
    if allowed is not None:
        if not allowed:
            return []
        selector = faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
        params = faiss.SearchParameters()
        params.sel = selector  # `selector` stays referenced here until the search is done
    scores, ids = index.search(query, k, params=params)
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i != -1]
