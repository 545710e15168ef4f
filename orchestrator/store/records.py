"""SQL over `records` and `corpora`. Every function takes the tenant and filters on it.

Upserts are one statement per batch: the rows travel as one array per column and `unnest` turns them back
into rows, so 10,000 records cost nine bind parameters and one round trip (a multi-row VALUES list would
hit PostgreSQL's 65,535-parameter limit and make the server parse a statement per batch size).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from orchestrator.store.schema import corpora, records
from schemas.records import CorpusView, RecordIn, RecordText, RecordView, UpsertCounts

_UPSERT = sa.text(
    """
    INSERT INTO records AS r
        (tenant_id, external_id, text, field_id, field_label, source_type, source_id, corpus_key, metadata)
    SELECT :tenant_id, u.external_id, u.text, u.field_id, u.field_label, u.source_type, u.source_id,
           u.corpus_key, u.metadata::jsonb
    FROM unnest(CAST(:external_id AS text[]), CAST(:text AS text[]), CAST(:field_id AS text[]),
                CAST(:field_label AS text[]), CAST(:source_type AS text[]), CAST(:source_id AS text[]),
                CAST(:corpus_key AS text[]), CAST(:metadata AS text[]))
        AS u(external_id, text, field_id, field_label, source_type, source_id, corpus_key, metadata)
    ON CONFLICT (tenant_id, external_id) DO UPDATE SET
        text = excluded.text, field_id = excluded.field_id, field_label = excluded.field_label,
        source_type = excluded.source_type, source_id = excluded.source_id,
        corpus_key = excluded.corpus_key, metadata = excluded.metadata,
        version = r.version + 1, updated_at = clock_timestamp()
    RETURNING (xmax = 0) AS inserted
    """
)


def upsert(conn: Connection, tenant_id: str, batch: Sequence[RecordIn]) -> UpsertCounts:
    """Insert new records and rewrite known ones (their version + 1), by external id. A batch naming one
    external id twice keeps the last: ON CONFLICT may not touch a row twice in one statement."""
    latest = list({r.external_id: r for r in batch}.values())
    columns: dict[str, list[Any]] = {
        "external_id": [r.external_id for r in latest],
        "text": [r.text for r in latest],
        "field_id": [r.field_id for r in latest],
        "field_label": [r.field_label for r in latest],
        "source_type": [r.source_type for r in latest],
        "source_id": [r.source_id for r in latest],
        "corpus_key": [r.corpus_key for r in latest],
        "metadata": [json.dumps(r.metadata) for r in latest],
    }
    # `xmax = 0` is true for a freshly inserted row version and false for one ON CONFLICT updated.
    flags = conn.execute(_UPSERT, {"tenant_id": tenant_id, **columns}).scalars().all()
    inserted = sum(1 for flag in flags if flag)
    return UpsertCounts(inserted=inserted, updated=len(batch) - inserted)


def _view(row: Any) -> RecordView:
    return RecordView(**{name: row._mapping[name] for name in RecordView.model_fields})


def page(
    conn: Connection, tenant_id: str, filters: dict[str, str], limit: int, after_id: int | None
) -> list[RecordView]:
    """Records in id order from just past `after_id`; `filters` maps column names to exact values."""
    query = sa.select(records).where(records.c.tenant_id == tenant_id)
    for name, value in filters.items():
        query = query.where(records.c[name] == value)
    if after_id is not None:
        query = query.where(records.c.id > after_id)
    return [_view(row) for row in conn.execute(query.order_by(records.c.id).limit(limit))]


def texts(
    conn: Connection, tenant_id: str, field_id: str, source_type: str, source_id: str
) -> list[RecordText]:
    """Every record of one field and source, in id order (the order a taxonomy build relies on)."""
    query = (
        sa.select(records.c.id, records.c.external_id, records.c.text)
        .where(
            records.c.tenant_id == tenant_id,
            records.c.field_id == field_id,
            records.c.source_type == source_type,
            records.c.source_id == source_id,
        )
        .order_by(records.c.id)
    )
    return [RecordText(row.id, row.external_id, row.text) for row in conn.execute(query)]


def field_label(conn: Connection, tenant_id: str, field_id: str) -> str | None:
    """The label records of a field carry, if any does."""
    query = (
        sa.select(records.c.field_label)
        .where(
            records.c.tenant_id == tenant_id,
            records.c.field_id == field_id,
            records.c.field_label.is_not(None),
        )
        .limit(1)
    )
    value = conn.execute(query).scalar_one_or_none()
    return str(value) if value is not None else None


def _corpus(row: Any) -> CorpusView:
    return CorpusView(
        id=row.id,
        key=row.key,
        name=row.name,
        filter_attributes=list(row.filter_attributes or []),
        index_version=row.index_version,
    )


def create_corpus(
    conn: Connection, tenant_id: str, key: str, name: str, filter_attributes: list[str]
) -> CorpusView | None:
    """The new corpus, or None when the tenant already has one with that key."""
    statement = (
        pg_insert(corpora)
        .values(tenant_id=tenant_id, key=key, name=name, filter_attributes=filter_attributes)
        .on_conflict_do_nothing(constraint="corpora_tenant_key_key")
        .returning(corpora)
    )
    row = conn.execute(statement).first()
    return _corpus(row) if row is not None else None


def corpus(conn: Connection, tenant_id: str, key: str) -> CorpusView | None:
    row = conn.execute(
        sa.select(corpora).where(corpora.c.tenant_id == tenant_id, corpora.c.key == key)
    ).first()
    return _corpus(row) if row is not None else None


def set_index_version(conn: Connection, tenant_id: str, key: str, version: str) -> None:
    conn.execute(
        sa.update(corpora)
        .where(corpora.c.tenant_id == tenant_id, corpora.c.key == key)
        .values(index_version=version)
    )


def corpus_texts(conn: Connection, tenant_id: str, corpus_key: str) -> list[RecordText]:
    """Every record of a corpus in id order."""
    query = (
        sa.select(records.c.id, records.c.external_id, records.c.text)
        .where(records.c.tenant_id == tenant_id, records.c.corpus_key == corpus_key)
        .order_by(records.c.id)
    )
    return [RecordText(row.id, row.external_id, row.text) for row in conn.execute(query)]


def corpus_ids_matching(
    conn: Connection, tenant_id: str, corpus_key: str, metadata: dict[str, Any]
) -> list[int]:
    """Ids of the corpus's records whose metadata holds every pair of `metadata` (JSONB containment)."""
    query = sa.select(records.c.id).where(
        records.c.tenant_id == tenant_id,
        records.c.corpus_key == corpus_key,
        records.c.metadata.contains(metadata),
    )
    return [int(i) for i in conn.execute(query).scalars()]


def external_ids(conn: Connection, tenant_id: str, record_ids: Sequence[int]) -> dict[int, str]:
    query = sa.select(records.c.id, records.c.external_id).where(
        records.c.tenant_id == tenant_id, records.c.id.in_(list(record_ids))
    )
    return {int(row.id): str(row.external_id) for row in conn.execute(query)}


def set_filter_attributes(conn: Connection, tenant_id: str, key: str, attributes: list[str]) -> None:
    conn.execute(
        sa.update(corpora)
        .where(corpora.c.tenant_id == tenant_id, corpora.c.key == key)
        .values(filter_attributes=attributes)
    )


def next_batch_end(conn: Connection, tenant_id: str, corpus_key: str, after_id: int, size: int) -> int | None:
    """The id of the `size`-th corpus record after `after_id` (or the last one); None when none is left."""
    ids = (
        sa.select(records.c.id)
        .where(records.c.tenant_id == tenant_id, records.c.corpus_key == corpus_key, records.c.id > after_id)
        .order_by(records.c.id)
        .limit(size)
        .subquery()
    )
    value = conn.execute(sa.select(sa.func.max(ids.c.id))).scalar_one_or_none()
    return int(value) if value is not None else None


_REWRITE_METADATA = sa.text(
    """
    UPDATE records SET
        metadata = CAST(:defaults AS jsonb) || CASE WHEN :drop THEN
            (SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}'::jsonb)
             FROM jsonb_each(records.metadata) AS e WHERE e.key = ANY(CAST(:declared AS text[])))
            ELSE records.metadata END,
        version = version + 1,
        rewritten_by = :run_id,
        updated_at = clock_timestamp()
    WHERE tenant_id = :tenant_id AND corpus_key = :corpus_key AND id > :after_id AND id <= :upto
      AND rewritten_by IS DISTINCT FROM :run_id
    """
)


def rewrite_metadata(
    conn: Connection,
    tenant_id: str,
    corpus_key: str,
    run_id: Any,
    after_id: int,
    upto: int,
    declared: list[str],
    defaults: dict[str, Any],
    drop_undeclared: bool,
) -> int:
    """Rewrite the metadata of the corpus records in (after_id, upto] to the declaration and answer how
    many of them this run has rewritten; records it rewrote already are skipped, so a batch redone after
    a crash rewrites nothing twice."""
    full_defaults = {name: defaults.get(name) for name in declared}
    result = conn.execute(
        _REWRITE_METADATA,
        {
            "defaults": json.dumps(full_defaults),
            "drop": drop_undeclared,
            "declared": declared,
            "run_id": run_id,
            "tenant_id": tenant_id,
            "corpus_key": corpus_key,
            "after_id": after_id,
            "upto": upto,
        },
    )
    del result  # how many this statement changed is not the count: a redone batch changes none
    done = sa.select(sa.func.count()).where(
        records.c.tenant_id == tenant_id,
        records.c.corpus_key == corpus_key,
        records.c.id > after_id,
        records.c.id <= upto,
        records.c.rewritten_by == run_id,
    )
    return int(conn.execute(done).scalar_one())


def list_corpora(conn: Connection, tenant_id: str) -> list[CorpusView]:
    query = sa.select(corpora).where(corpora.c.tenant_id == tenant_id).order_by(corpora.c.id)
    return [_corpus(row) for row in conn.execute(query)]
