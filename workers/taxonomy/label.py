"""Labels from class-based TF-IDF: a node is named by the terms frequent in it and rare in its siblings.

For a group of siblings, each node's term counts are summed over its members; a term's weight in a node is
its frequency there times log(1 + A / f), with A the mean number of words per sibling and f the term's
count over all siblings. Terms every sibling uses alike score low, so siblings get different names.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csr_matrix
from sklearn.feature_extraction.text import CountVectorizer

TOP_TERMS = 5
LABEL_TERMS = 2


class TermCounts:
    """Word counts of every text, computed once and summed per node on demand."""

    def __init__(self, texts: Sequence[str]) -> None:
        vectorizer = CountVectorizer(stop_words="english", min_df=1)
        try:
            self.matrix: csr_matrix = vectorizer.fit_transform(texts).tocsr()
            self.terms: NDArray[np.str_] = vectorizer.get_feature_names_out()
        except ValueError:  # no words at all
            self.matrix = csr_matrix((len(texts), 1))
            self.terms = np.array([""])

    def per_group(self, groups: Sequence[NDArray[np.intp]]) -> NDArray[np.float64]:
        return np.vstack([np.asarray(self.matrix[g].sum(axis=0)).ravel() for g in groups]).astype(np.float64)


def top_terms(counts: TermCounts, groups: Sequence[NDArray[np.intp]]) -> list[list[str]]:
    """Each sibling's distinguishing terms, best first (ties by term, so the result is deterministic)."""
    per_group = counts.per_group(groups)
    totals = per_group.sum(axis=1, keepdims=True)
    frequency = per_group / np.maximum(totals, 1.0)
    overall = per_group.sum(axis=0)
    average_words = float(totals.mean())
    weight = frequency * np.log1p(average_words / np.maximum(overall, 1.0))
    found = []
    for row, present in zip(weight, per_group, strict=True):
        candidates = np.flatnonzero(present > 0)
        order = candidates[np.lexsort((counts.terms[candidates], -row[candidates]))]
        found.append([str(t) for t in counts.terms[order[:TOP_TERMS]] if t])
    return found


def sibling_labels(terms: Sequence[Sequence[str]]) -> list[str]:
    """Labels from each sibling's top terms, distinct among the siblings: a clash takes more terms, and
    one still clashing (or with no terms at all) gets its position appended."""
    labels: list[str] = []
    taken: set[str] = set()
    for position, own in enumerate(terms, start=1):
        label = ""
        for width in range(LABEL_TERMS, max(LABEL_TERMS, len(own)) + 1):
            label = " ".join(own[:width])
            if label and label not in taken:
                break
        if not label or label in taken:
            label = f"{label or 'cluster'} #{position}"
        taken.add(label)
        labels.append(label)
    return labels
