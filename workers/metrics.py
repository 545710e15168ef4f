"""A worker's own metrics on a port of its own (`ORCH_WORKER_METRICS_PORT`).

Celery runs tasks in pool processes, so each one records into files of its own under a shared folder
(prometheus-client's multiprocess mode) and the worker's main process serves their sum. The folder must
be named before prometheus-client is first imported, which is why this module imports it only in `serve`.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import psutil

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare(data_dir: Path) -> Path:
    """An empty folder for this worker's metric files, named in the environment its pool inherits."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError("worker metrics must be prepared before prometheus_client is imported")
    parent = data_dir.resolve() / "worker-metrics"
    if parent.is_dir():
        for left in parent.iterdir():  # the files of workers gone (and of an earlier process with our pid)
            if (
                not left.name.isdigit()
                or int(left.name) == os.getpid()
                or not psutil.pid_exists(int(left.name))
            ):
                shutil.rmtree(left, ignore_errors=True)
    folder = parent / str(os.getpid())
    folder.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(folder)
    return folder


def serve(host: str, port: int) -> None:
    """Serve the sum of every process's metrics on a daemon thread."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(port, addr=host, registry=registry)
