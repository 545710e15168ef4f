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


# Real English, for embedders that know the language (minilm): six topics of everyday words, written into
# short sentences with filler that every topic shares, so word overlap alone does not separate them.
_ENGLISH_TOPICS = {
    "cooking": "oven recipe flour butter garlic simmer onion bake pepper sauce dough roast kitchen spoon "
    "boil salad soup pastry grill taste",
    "football": "goal striker referee penalty midfield league coach stadium defender match score keeper "
    "tackle season fans pitch transfer kick offside",
    "finance": "stock bond interest dividend market investor inflation portfolio shares broker loan "
    "mortgage bank budget credit savings tax profit",
    "medicine": "doctor patient fever vaccine surgery clinic nurse symptom diagnosis prescription hospital "
    "infection dose therapy blood allergy pain",
    "travel": "flight airport passport hotel luggage beach museum ticket tourist train island journey "
    "visa map guide cruise booking holiday",
    "software": "server database code bug compiler deploy network cloud python function release "
    "laptop keyboard password update backup browser",
}
_FILLER = [
    "the",
    "a",
    "my",
    "our",
    "their",
    "this",
    "that",
    "some",
    "every",
    "really",
    "quite",
    "very",
    "today",
    "yesterday",
    "again",
    "maybe",
    "still",
    "just",
    "people",
    "friend",
    "week",
    "morning",
    "evening",
    "plan",
    "idea",
    "thing",
    "place",
    "time",
    "work",
    "home",
    "city",
    "new",
    "old",
    "good",
    "bad",
    "big",
]
_FRAMES = (
    "{f1} {t1} and the {t2} were {f2} with {t3} {t4}",
    "we talked about the {t1} {t2} {f1} with the {t3} and {t4}",
    "{f1} {t1} {t2} {f2} {t3} {t4}",
    "is the {t1} {f1} ready for the {t2} {t3} {t4} {f2}",
    "I think {f1} {t1} needs a {t2} {t3} and {t4} {f2}",
)


def generate_english(records: int = 2400, seed: int = 5) -> LabelledCorpus:
    rng = random.Random(seed)
    vocabularies = [words.split() for words in _ENGLISH_TOPICS.values()]
    texts, labels = [], []
    for i in range(records):
        topic = i % len(vocabularies)
        frame = rng.choice(_FRAMES)
        t1, t2, t3, t4 = rng.sample(vocabularies[topic], 4)
        f1, f2 = rng.sample(_FILLER, 2)
        texts.append(frame.format(t1=t1, t2=t2, t3=t3, t4=t4, f1=f1, f2=f2))
        labels.append(topic)
    return LabelledCorpus(texts, labels)
