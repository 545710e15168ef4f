"""The layering of the code, held with `ast`: every import of every module, checked against the arrows.

The parts and their forbidden imports are data below; a new module falls into the part of its longest
matching prefix, so nothing escapes the check by being new. Nothing is imported or executed here.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("orchestrator", "workers", "schemas")

# part -> import prefixes it must never use. Prefixes match whole dotted names (`a.b` matches `a.b.c`).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    # A pure core: the standard library and the contracts, nothing else of ours or anyone's.
    "orchestrator.domain": ("orchestrator.", "workers", "*third-party*"),
    # The leaf everyone may use: only the standard library and pydantic.
    "schemas": ("orchestrator", "workers", "*third-party-but-pydantic*"),
    # Workers write through the services and get them from the composition root; never SQL or the store.
    "workers": ("orchestrator.store", "sqlalchemy", "orchestrator.api", "orchestrator.readmodel"),
    # The write path's side effects: the store and the domain, under the service; never a reader or a job.
    "orchestrator.policies": (
        "orchestrator.api",
        "orchestrator.readmodel",
        "orchestrator.projections",
        "orchestrator.processes",
        "workers",
    ),
    # The API never runs jobs.
    "orchestrator.api": ("workers",),
    # Read models fold the log; they do not call the write path or the HTTP layer.
    "orchestrator.projections": ("orchestrator.api", "orchestrator.services", "orchestrator.readmodel"),
    "orchestrator.readmodel": ("orchestrator.api", "orchestrator.services", "workers"),
    # The client is for other services: the contracts and httpx, none of the server's code.
    "orchestrator.client": (
        "orchestrator.api",
        "orchestrator.bootstrap",
        "orchestrator.cli",
        "orchestrator.domain",
        "orchestrator.metrics",
        "orchestrator.processes",
        "orchestrator.projections",
        "orchestrator.readmodel",
        "orchestrator.services",
        "orchestrator.settings",
        "orchestrator.store",
        "workers",
        "sqlalchemy",
        "fastapi",
    ),
    # Metrics read the store and the projections' names; the HTTP layer mounts them, never the reverse.
    "orchestrator.metrics": ("orchestrator.api", "orchestrator.services", "orchestrator.cli", "workers"),
    # The request id is a leaf: the API, the write path, the relay and the workers all carry it.
    "orchestrator.correlation": ("orchestrator.", "workers"),
    # Tracing is optional and a leaf like it: OpenTelemetry is loaded only once it is turned on.
    "orchestrator.tracing": ("orchestrator.", "workers"),
    # The process-wide instruments are a leaf: the store times its appends with them.
    "orchestrator.metrics.process": ("orchestrator.", "workers"),
    # The write service's cache of folded run states: domain states only, no I/O of its own.
    "orchestrator.folded_states": (
        "orchestrator.api",
        "orchestrator.store",
        "orchestrator.readmodel",
        "orchestrator.projections",
        "orchestrator.services",
        "workers",
        "*third-party*",
    ),
    # Cron expressions on cronsim: a leaf, the calendar the pure schedule decision steps through.
    "orchestrator.cron": ("orchestrator.", "workers"),
    # Dataset work without I/O: chunking, parsing, the tasks. Pure like the domain.
    "orchestrator.datasets": ("orchestrator.", "workers", "*third-party*"),
    # Workflow runs without I/O: references, transforms, how children ended, which tasks a step may run.
    "orchestrator.workflows": (
        "orchestrator.api",
        "orchestrator.store",
        "orchestrator.services",
        "orchestrator.readmodel",
        "orchestrator.projections",
        "orchestrator.storage",
        "workers",
        "*third-party*",
    ),
    # Object storage: fsspec and the settings, below everything that uses it.
    "orchestrator.storage": (
        "orchestrator.api",
        "orchestrator.store",
        "orchestrator.services",
        "orchestrator.readmodel",
        "orchestrator.projections",
        "workers",
        "sqlalchemy",
    ),
    # The store is the bottom of our own stack.
    "orchestrator.store": (
        "orchestrator.api",
        "orchestrator.services",
        "orchestrator.projections",
        "orchestrator.readmodel",
        "orchestrator.processes",
        "orchestrator.cli",
        "workers",
    ),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module: str) -> str | None:
    matches = [p for p in FORBIDDEN if module == p or module.startswith(p + ".")]
    return max(matches, key=len) if matches else None


def imported_names(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
    return found


def _third_party(name: str) -> bool:
    top = name.split(".")[0]
    return top not in sys.stdlib_module_names and top not in ("__future__", *PACKAGES)


def violates(name: str, rule: str) -> bool:
    if rule == "*third-party*":
        return _third_party(name)
    if rule == "*third-party-but-pydantic*":
        return _third_party(name) and name.split(".")[0] != "pydantic"
    if rule.endswith("."):
        return name.startswith(rule)
    return name == rule or name.startswith(rule + ".")


def violations(source: str, module: str) -> list[str]:
    part = part_of(module)
    if part is None:
        return []
    return [
        f"{module}:{line} imports {name} (forbidden in {part}: {rule})"
        for line, name in imported_names(ast.parse(source))
        for rule in FORBIDDEN[part]
        if violates(name, rule)
        and not (rule == "orchestrator." and name.startswith(("orchestrator.domain", f"{part}.")))
    ]


def sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_the_layering_holds() -> None:
    found = [v for path in sources() for v in violations(path.read_text(), module_name(path))]
    assert not found, "\n".join(found)


# Entry points and wiring may import every part: they are where the parts meet.
COMPOSITION = ("orchestrator.cli", "orchestrator.processes", "orchestrator.migrations")


def test_every_module_belongs_to_a_part_or_is_a_known_top_level_module() -> None:
    """A module outside every part escapes the arrows: name the ones allowed to sit on their own."""
    loose = {
        "orchestrator",
        "orchestrator.bootstrap",
        "orchestrator.text_records",
        "orchestrator.vector_index",
        "orchestrator.log",
        "orchestrator.services",
        "orchestrator.settings",
    }
    unplaced = [
        module_name(p)
        for p in sources()
        if part_of(module_name(p)) is None
        and module_name(p) not in loose
        and not module_name(p).startswith(
            ("orchestrator.cli", "orchestrator.processes", "orchestrator.migrations")
        )
    ]
    assert not unplaced, unplaced


@pytest.mark.parametrize(
    ("module", "line"),
    [
        ("workers.jobs.sleep", "from orchestrator.store.events import append"),
        ("workers.executor", "import sqlalchemy"),
        ("orchestrator.domain.decide", "from orchestrator.services import RunService"),
        ("orchestrator.domain.state", "import sqlalchemy as sa"),
        ("schemas.events", "from orchestrator.domain.state import RunState"),
        ("orchestrator.api.runs", "from workers.executor import execute"),
        ("orchestrator.projections.runs", "from orchestrator.services import RunService"),
        ("orchestrator.store.events", "from orchestrator.readmodel.runs import get_run"),
        ("orchestrator.client.sync", "from orchestrator.store import keys"),
    ],
)
def test_a_forbidden_import_is_caught(module: str, line: str) -> None:
    """The check bites: each line, added to a module of that part, is reported."""
    path = ROOT / (module.replace(".", "/") + ".py")
    assert violations(path.read_text() + "\n" + line + "\n", module)


def test_allowed_imports_pass() -> None:
    assert not violations("from orchestrator.domain.lifecycle import TERMINAL\n", "orchestrator.domain.state")
    assert not violations("from pydantic import BaseModel\n", "schemas.events")
    assert not violations("from orchestrator.services import RunService\n", "workers.executor")
