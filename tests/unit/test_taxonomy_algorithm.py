"""The taxonomy build's algorithm on a generated labelled corpus: it agrees with the labels better than
plain TF-IDF + k-means, its tree is consistent, its labels are usable, and a seed fixes the result."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import normalized_mutual_info_score

from tests.taxonomy_corpus import LabelledCorpus, generate, generate_english
from workers.taxonomy.cluster import ClusteringFailed, build_tree
from workers.taxonomy.embed import TfidfEmbedder
from workers.taxonomy.label import sibling_labels
from workers.taxonomy.tree import InvalidTree, Tree, assemble, validate

TOPICS = 6
SEED = 3


@pytest.fixture(scope="module")
def corpus() -> LabelledCorpus:
    return generate(records=2400, topics=TOPICS, seed=11)


def build(corpus: LabelledCorpus, seed: int = SEED, clusters: int | str = TOPICS) -> Tree:
    vectors = TfidfEmbedder(seed).embed(corpus.texts, lambda _done: None)
    top = build_tree(vectors, clusters, max_depth=2, min_cluster_size=40, seed=seed)
    return assemble(top, corpus.texts, list(range(len(corpus.texts))))


@pytest.fixture(scope="module")
def tree(corpus: LabelledCorpus) -> Tree:
    return build(corpus)


def top_level(tree: Tree, records: int) -> list[int]:
    found = [0] * records
    for assignment in tree.assignments:
        found[assignment.record_id] = assignment.path[0]
    return found


def test_the_top_level_agrees_with_the_labels_better_than_plain_kmeans(
    corpus: LabelledCorpus, tree: Tree
) -> None:
    plain = KMeans(TOPICS, n_init=1, random_state=SEED).fit_predict(
        TfidfVectorizer().fit_transform(corpus.texts)
    )
    baseline = normalized_mutual_info_score(corpus.labels, plain)
    ours = normalized_mutual_info_score(corpus.labels, top_level(tree, len(corpus.texts)))
    assert baseline < 0.9, f"the corpus is too easy to tell anything apart (plain k-means: {baseline:.3f})"
    assert ours > baseline + 0.03, f"ours {ours:.3f} vs plain TF-IDF + k-means {baseline:.3f}"


def test_sizes_add_up_and_every_record_has_one_path(corpus: LabelledCorpus, tree: Tree) -> None:
    validate(tree, len(corpus.texts))  # raises on any broken rule
    top = [n for n in tree.nodes if n.parent_id is None]
    assert len(top) == TOPICS and sum(n.size for n in top) == len(corpus.texts)
    assert any(n.depth == 2 for n in tree.nodes), "no node was split"
    by_id = {n.id: n for n in tree.nodes}
    for assignment in tree.assignments:
        assert assignment.path[-1] == assignment.node_id
        assert [by_id[i].depth for i in assignment.path] == list(range(1, len(assignment.path) + 1))
        assert all(by_id[child].parent_id == parent for parent, child in pairwise(assignment.path))


def test_sibling_labels_are_non_empty_and_distinct(tree: Tree) -> None:
    groups: dict[int | None, list[str]] = {}
    for node in tree.nodes:
        assert node.label.strip() and node.top_terms and node.representative_record_ids
        groups.setdefault(node.parent_id, []).append(node.label)
    for labels in groups.values():
        assert len(set(labels)) == len(labels), labels


def test_the_same_seed_gives_the_same_tree(corpus: LabelledCorpus, tree: Tree) -> None:
    assert build(corpus) == tree


def test_auto_chooses_a_number_of_clusters(corpus: LabelledCorpus) -> None:
    auto = build(corpus, clusters="auto")
    validate(auto, len(corpus.texts))
    assert 2 <= sum(1 for n in auto.nodes if n.parent_id is None) <= 12


def test_records_that_all_embed_alike_cannot_make_a_tree() -> None:
    vectors = np.tile(np.array([[1.0, 0.0]]), (40, 1))
    with pytest.raises(ClusteringFailed):
        build_tree(vectors, 3, 2, 5, 0)


def test_validation_catches_sizes_that_do_not_add_up(corpus: LabelledCorpus, tree: Tree) -> None:
    grown = [replace(tree.nodes[0], size=tree.nodes[0].size + 1), *tree.nodes[1:]]
    with pytest.raises(InvalidTree, match="sizes"):
        validate(Tree(grown, tree.assignments), len(corpus.texts))
    orphan = [*tree.nodes, replace(tree.nodes[-1], id=len(tree.nodes) + 1, parent_id=999)]
    with pytest.raises(InvalidTree, match="parent"):
        validate(Tree(orphan, tree.assignments), len(corpus.texts))


def test_clashing_labels_are_made_distinct() -> None:
    labels = sibling_labels([["a", "b"], ["a", "b", "c"], ["a", "b"], []])
    assert len(set(labels)) == 4 and all(labels)


def test_minilm_top_level_agrees_with_the_labels_of_an_english_corpus() -> None:
    """The `embeddings` extra's model, on the CPU when no GPU is lent: skipped where it is not installed."""
    pytest.importorskip("sentence_transformers", reason="the `embeddings` extra is not installed")
    from workers.taxonomy.embed import MiniLMEmbedder

    english = generate_english(records=2400, seed=5)
    vectors = MiniLMEmbedder().embed(english.texts, lambda _done: None)
    top = build_tree(vectors, 6, max_depth=1, min_cluster_size=40, seed=SEED)
    tree = assemble(top, english.texts, list(range(len(english.texts))))
    ours = normalized_mutual_info_score(english.labels, top_level(tree, len(english.texts)))
    plain = KMeans(6, n_init=1, random_state=SEED).fit_predict(TfidfVectorizer().fit_transform(english.texts))
    baseline = normalized_mutual_info_score(english.labels, plain)
    print(f"\nminilm top level NMI {ours:.3f}; plain TF-IDF + k-means {baseline:.3f}")
    assert ours >= 0.5


def test_tfidf_does_as_well_as_plain_kmeans_on_an_english_corpus() -> None:
    """An easy corpus (plain k-means separates it perfectly): the tree must not lose what plain finds."""
    english = generate_english(records=2400, seed=5)
    tree = build(english)
    ours = normalized_mutual_info_score(english.labels, top_level(tree, len(english.texts)))
    plain = KMeans(6, n_init=1, random_state=SEED).fit_predict(TfidfVectorizer().fit_transform(english.texts))
    baseline = normalized_mutual_info_score(english.labels, plain)
    print(f"\ntfidf top level NMI {ours:.3f}; plain TF-IDF + k-means {baseline:.3f}")
    assert ours >= baseline - 0.01, f"ours {ours:.3f} vs plain TF-IDF + k-means {baseline:.3f}"
