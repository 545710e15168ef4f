"""The domain package imports only the standard library and `schemas`."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ("sqlalchemy", "celery", "fastapi", "psycopg", "redis", "kombu", "starlette", "structlog")


def test_domain_imports_no_infrastructure() -> None:
    code = (
        "import sys, orchestrator.domain.decide, orchestrator.domain.state, orchestrator.domain.retry\n"
        f"print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"domain pulled in: {out}"
