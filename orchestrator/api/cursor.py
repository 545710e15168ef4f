"""Opaque page cursors: HMAC-signed, bound to the tenant and the filters they were issued for."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any


class InvalidCursor(Exception):
    pass


def _sign(secret: str, body: bytes) -> bytes:
    return hmac.new(secret.encode(), body, hashlib.sha256).digest()[:16]


def fingerprint(filters: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(filters, sort_keys=True, default=str).encode()).hexdigest()[:16]


def encode(secret: str, tenant_id: str, filters: dict[str, Any], position: dict[str, Any]) -> str:
    body = json.dumps(
        {"t": tenant_id, "f": fingerprint(filters), "p": position}, separators=(",", ":")
    ).encode()
    token = body + _sign(secret, body)
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


def decode(secret: str, token: str, tenant_id: str, filters: dict[str, Any]) -> dict[str, Any]:
    """The position a cursor carries, or InvalidCursor for anything forged, foreign or mismatched."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        raise InvalidCursor("malformed cursor") from None
    body, signature = raw[:-16], raw[-16:]
    if len(raw) <= 16 or not hmac.compare_digest(signature, _sign(secret, body)):
        raise InvalidCursor("malformed cursor")
    payload = json.loads(body)
    if payload.get("t") != tenant_id or payload.get("f") != fingerprint(filters):
        raise InvalidCursor("cursor does not belong to this query")
    position = payload.get("p")
    if not isinstance(position, dict):
        raise InvalidCursor("malformed cursor")
    return position
