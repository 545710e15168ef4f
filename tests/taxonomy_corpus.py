"""A generated labelled corpus for taxonomy tests and benchmarks: short texts of several topics that share
much of their vocabulary, so that clustering them is not trivial.

Topics come in pairs (a "family") that share half their topic words, every text is mostly noise words
drawn from one vocabulary common to all topics, and text lengths vary. Deterministic for a seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

_SYLLABLES = ("ka", "lo", "mi", "ren", "tu", "sa", "vor", "pel", "dri", "nom", "qua", "ist", "bel", "gor")


def _words(rng: random.Random, count: int, taken: set[str]) -> list[str]:
    found: list[str] = []
    while len(found) < count:
        word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3)))
        if word not in taken:
            taken.add(word)
            found.append(word)
    return found


@dataclass(frozen=True)
class LabelledCorpus:
    texts: list[str]
    labels: list[int]


def generate(records: int = 2500, topics: int = 8, seed: int = 7) -> LabelledCorpus:
    rng = random.Random(seed)
    taken: set[str] = set()
    noise = _words(rng, 400, taken)
    families = [_words(rng, 12, taken) for _ in range((topics + 1) // 2)]
    vocabularies = [families[t // 2] + _words(rng, 12, taken) for t in range(topics)]
    texts, labels = [], []
    for i in range(records):
        topic = i % topics
        length = rng.randint(6, 16)
        topical = max(1, round(length * rng.uniform(0.2, 0.45)))
        words = rng.choices(vocabularies[topic], k=topical) + rng.choices(noise, k=length - topical)
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(topic)
    return LabelledCorpus(texts, labels)
