"""Every declared job kind has a handler a worker can load, and nothing heavy loads before it is needed."""

from __future__ import annotations

import subprocess
import sys

from schemas.jobs import JOB_KINDS
from workers.jobs import MODULES, handler_for


def test_every_declared_kind_has_a_handler_that_loads() -> None:
    assert set(MODULES) == set(JOB_KINDS)
    for kind in MODULES:
        assert callable(handler_for(kind)), kind
    assert handler_for("no-such-kind") is None


def test_the_api_and_the_worker_start_without_the_numeric_libraries() -> None:
    # They are most of a process's memory (about 130 MB of ~220): only the kinds and the route that use
    # them load them, on first use.
    probe = (
        "import sys, orchestrator.api.app, workers.app;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'faiss', 'sklearn', 'scipy', 'numpy'}))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]", loaded.stdout
