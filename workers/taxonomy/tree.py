"""From clusters to the stored tree: node ids, labels, sizes, representatives and each record's path; and
the checks a tree must pass before it is stored (labels, parents, sizes that add up)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from schemas.taxonomy import Assignment, TreeNode
from workers.taxonomy.cluster import Cluster
from workers.taxonomy.label import TermCounts, sibling_labels, top_terms


class InvalidTree(Exception):
    """The tree breaks one of its rules; the message says which."""


@dataclass(frozen=True)
class Tree:
    nodes: list[TreeNode]
    assignments: list[Assignment]


def assemble(top: Sequence[Cluster], texts: Sequence[str], record_ids: Sequence[int]) -> Tree:
    """Number nodes breadth first from 1 (parents before children), label each sibling group, and give
    every record the path to its deepest node."""
    counts = TermCounts(texts)
    nodes: list[TreeNode] = []
    deepest: dict[int, tuple[int, ...]] = {}
    level: list[tuple[int | None, tuple[int, ...], list[Cluster]]] = [(None, (), list(top))]
    while level:
        following: list[tuple[int | None, tuple[int, ...], list[Cluster]]] = []
        for parent_id, parent_path, siblings in level:
            terms = top_terms(counts, [c.members for c in siblings])
            for cluster, own_terms, label in zip(siblings, terms, sibling_labels(terms), strict=True):
                node_id = len(nodes) + 1
                path = (*parent_path, node_id)
                nodes.append(
                    TreeNode(
                        id=node_id,
                        parent_id=parent_id,
                        depth=cluster.depth,
                        label=label,
                        top_terms=tuple(own_terms),
                        size=len(cluster.members),
                        representative_record_ids=tuple(record_ids[i] for i in cluster.representatives),
                    )
                )
                if cluster.children:
                    following.append((node_id, path, cluster.children))
                else:
                    deepest.update((int(i), path) for i in cluster.members)
        level = following
    assignments = [Assignment(record_ids[i], path[-1], path) for i, path in sorted(deepest.items())]
    return Tree(nodes, assignments)


def validate(tree: Tree, record_count: int) -> None:
    """Every node labelled, siblings named apart, parents that exist and come first, each parent's size
    the sum of its children's, the top level's the record count, and every record placed once."""
    by_id = {node.id: node for node in tree.nodes}
    children: dict[int | None, list[TreeNode]] = {}
    for node in tree.nodes:
        if not node.label.strip():
            raise InvalidTree(f"node {node.id} has an empty label")
        if node.parent_id is not None and (node.parent_id not in by_id or node.parent_id >= node.id):
            raise InvalidTree(f"node {node.id} names a parent that is not before it")
        children.setdefault(node.parent_id, []).append(node)
    for parent_id, group in children.items():
        labels = Counter(node.label for node in group)
        if max(labels.values()) > 1:
            raise InvalidTree(f"children of {parent_id} share a label")
        expected = record_count if parent_id is None else by_id[parent_id].size
        if sum(node.size for node in group) != expected:
            raise InvalidTree(f"sizes under {parent_id} do not add up")
    placed = [a.record_id for a in tree.assignments]
    if len(placed) != record_count or len(set(placed)) != record_count:
        raise InvalidTree("not every record is placed exactly once")
