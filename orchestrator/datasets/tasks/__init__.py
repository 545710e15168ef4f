"""The built-in dataset tasks, found by looking: every module of this package that defines a subclass of
`DatasetTask` adds that task, so adding a task is adding one file."""

from __future__ import annotations

import importlib
import pkgutil

from orchestrator.datasets.tasks.base import DatasetTask


def _discover() -> dict[str, type[DatasetTask]]:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return {task.name: task for task in sorted(DatasetTask.__subclasses__(), key=lambda t: t.name)}


DATASET_TASKS: dict[str, type[DatasetTask]] = _discover()
