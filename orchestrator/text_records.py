"""The path to a tenant's records, corpora and taxonomy trees, for API routes and job handlers alike.

Workers may not touch the store (the layering test holds that), so a job reads its records and stores its
tree through this service, which it builds from the engine of the RunService it was handed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from orchestrator.services import StoreUnavailable
from orchestrator.store import records, taxonomy_trees
from schemas.records import CorpusView, RecordIn, RecordText, RecordView, UpsertCounts
from schemas.taxonomy import Assignment, AssignmentView, NodeView, TreeNode


class CorpusExists(Exception):
    """The tenant already has a corpus with that key."""


@contextmanager
def _store_errors() -> Iterator[None]:
    try:
        yield
    except OperationalError:
        raise StoreUnavailable("database unavailable") from None


class TextRecords:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def upsert_records(self, tenant_id: str, batch: Sequence[RecordIn]) -> UpsertCounts:
        with _store_errors(), self.engine.begin() as conn:
            return records.upsert(conn, tenant_id, batch)

    def list_records(
        self, tenant_id: str, filters: dict[str, str], limit: int, after_id: int | None
    ) -> list[RecordView]:
        with _store_errors(), self.engine.connect() as conn:
            return records.page(conn, tenant_id, filters, limit, after_id)

    def create_corpus(self, tenant_id: str, key: str, name: str, filter_attributes: list[str]) -> CorpusView:
        with _store_errors(), self.engine.begin() as conn:
            created = records.create_corpus(conn, tenant_id, key, name, filter_attributes)
        if created is None:
            raise CorpusExists(key)
        return created

    def list_corpora(self, tenant_id: str) -> list[CorpusView]:
        with _store_errors(), self.engine.connect() as conn:
            return records.list_corpora(conn, tenant_id)

    def corpus(self, tenant_id: str, key: str) -> CorpusView | None:
        with _store_errors(), self.engine.connect() as conn:
            return records.corpus(conn, tenant_id, key)

    def set_index_version(self, tenant_id: str, key: str, version: str) -> None:
        with _store_errors(), self.engine.begin() as conn:
            records.set_index_version(conn, tenant_id, key, version)

    def corpus_texts(self, tenant_id: str, corpus_key: str) -> list[RecordText]:
        with _store_errors(), self.engine.connect() as conn:
            return records.corpus_texts(conn, tenant_id, corpus_key)

    def corpus_ids_matching(self, tenant_id: str, corpus_key: str, metadata: dict[str, Any]) -> list[int]:
        with _store_errors(), self.engine.connect() as conn:
            return records.corpus_ids_matching(conn, tenant_id, corpus_key, metadata)

    def external_ids(self, tenant_id: str, record_ids: Sequence[int]) -> dict[int, str]:
        with _store_errors(), self.engine.connect() as conn:
            return records.external_ids(conn, tenant_id, record_ids)

    def set_filter_attributes(self, tenant_id: str, key: str, attributes: list[str]) -> None:
        with _store_errors(), self.engine.begin() as conn:
            records.set_filter_attributes(conn, tenant_id, key, attributes)

    def next_batch_end(self, tenant_id: str, corpus_key: str, after_id: int, size: int) -> int | None:
        with _store_errors(), self.engine.connect() as conn:
            return records.next_batch_end(conn, tenant_id, corpus_key, after_id, size)

    def rewrite_metadata(
        self,
        tenant_id: str,
        corpus_key: str,
        run_id: UUID,
        after_id: int,
        upto: int,
        declared: list[str],
        defaults: dict[str, Any],
        drop_undeclared: bool,
    ) -> int:
        """One batch, committed on its own."""
        with _store_errors(), self.engine.begin() as conn:
            return records.rewrite_metadata(
                conn, tenant_id, corpus_key, run_id, after_id, upto, declared, defaults, drop_undeclared
            )

    def record_texts(
        self, tenant_id: str, field_id: str, source_type: str, source_id: str
    ) -> list[RecordText]:
        with _store_errors(), self.engine.connect() as conn:
            return records.texts(conn, tenant_id, field_id, source_type, source_id)

    def field_label(self, tenant_id: str, field_id: str) -> str | None:
        with _store_errors(), self.engine.connect() as conn:
            return records.field_label(conn, tenant_id, field_id)

    def replace_tree(
        self, tenant_id: str, run_id: UUID, nodes: Sequence[TreeNode], assignments: Sequence[Assignment]
    ) -> None:
        with _store_errors(), self.engine.begin() as conn:
            taxonomy_trees.replace_tree(conn, tenant_id, run_id, nodes, assignments)

    def tree_nodes(self, tenant_id: str, run_id: UUID) -> list[NodeView]:
        with _store_errors(), self.engine.connect() as conn:
            return taxonomy_trees.nodes(conn, tenant_id, run_id)

    def tree_assignments(
        self, tenant_id: str, run_id: UUID, limit: int, after_record_id: int | None
    ) -> list[AssignmentView]:
        with _store_errors(), self.engine.connect() as conn:
            return taxonomy_trees.assignments(conn, tenant_id, run_id, limit, after_record_id)
