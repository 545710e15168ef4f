"""What a workflow run is created with (`POST /api/v1/data-products/runs` with `workflowDocumentId` and no
`taskName`): the document's latest version captured whole into the run's parameters, so later versions never
change it, and the names and snapshot the data-products surface shows recorded as creation attributes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy.engine import Connection

from orchestrator.services import InvalidRequest
from orchestrator.store import workflows
from schemas.workflows import WorkflowRunParams

KIND = "workflow"


def workflow_submission(
    conn: Connection, tenant_id: str, document_id: UUID, context: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(params, attributes) of a run of the tenant's document `document_id`, as it stands now."""
    found = workflows.latest(conn, tenant_id, document_id)
    if found is None:
        msg = "workflow document not found"
        raise InvalidRequest([{"loc": ["body", "workflowDocumentId"], "msg": msg, "type": "value_error"}])
    record, version = found
    params = WorkflowRunParams.model_validate(
        {
            "document_id": record.id,
            "version_id": version.id,
            "version": version.version,
            "title": record.title,
            "label": version.label,
            "document": version.document,
            "context": context,
        }
    ).model_dump(mode="json")
    attributes = {
        "task_display_name": record.title,
        "workflow_document_id": str(record.id),
        "workflow_document_title": record.title,
        "workflow_document_version": version.version,
        "workflow_document_version_id": str(version.id),
        "workflow_document_version_label": version.label,
        "workflow_runtime_snapshot": _snapshot(record, version, datetime.now(UTC)),
        "context": context,
    }
    return params, attributes


def _snapshot(
    record: workflows.WorkflowRecord, version: workflows.VersionRecord, captured_at: datetime
) -> dict[str, Any]:
    return {
        "kind": "workflow_runtime_snapshot",
        "document": {
            "capturedAt": captured_at.isoformat(),
            "documentId": str(record.id),
            "documentVersion": version.version,
            "documentVersionId": str(version.id),
            "documentVersionLabel": version.label,
            "title": record.title,
        },
    }
