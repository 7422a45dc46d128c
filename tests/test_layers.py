"""The layer order of docs/architecture.md, checked on every import of the code.

Each module under gridmon/ and workers/ (and mqtt_bridge.py, beat_schedule.py) belongs to one
component; a component may import only the components listed for it in `MAY_IMPORT` (and
itself). Imports are read from the source with `ast` — top-level, inside functions and under
TYPE_CHECKING alike — so a lazy import cannot hide a wrong-way dependency. The pure packages and
the evaluation also may not import the client libraries of the services (or click).

SQL lives in gridmon/storage/ (and alembic/): a string literal elsewhere that holds a statement
keyword (SELECT, INSERT, UPDATE, DELETE, COPY) fails. Docstrings and other bare string
statements are prose and are not checked.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Module prefix → component (longest prefix wins). Keep in step with docs/architecture.md.
COMPONENTS: dict[str, str] = {
    "gridmon": "package",
    "gridmon.config": "config",
    "gridmon.domain": "domain",
    "gridmon.logsetup": "infra",
    "gridmon.metrics": "infra",
    "gridmon.tracing": "infra",
    "gridmon.redis_client": "infra",
    "gridmon.heartbeat": "infra",
    "gridmon.detection": "detection",
    "gridmon.maintenance": "maintenance",
    "gridmon.storage": "storage",
    "gridmon.simulator": "simulator",
    "gridmon.alerts": "alerts",
    "gridmon.jobs": "jobs",
    "gridmon.evaluation": "evaluation",
    "gridmon.services": "services",
    "gridmon.celery": "celery",
    "workers": "celery",
    "beat_schedule": "schedule",
    "gridmon.bridge": "bridge",
    "mqtt_bridge": "bridge",
    "gridmon.bench": "bench",
    "gridmon.api": "api",
    "gridmon.cli": "cli",
    "gridmon.up": "cli",
}

# Ground up. A component may import only these (and itself).
MAY_IMPORT: dict[str, set[str]] = {
    "package": set(),
    "config": set(),
    "domain": {"config"},
    "infra": {"config", "domain"},
    "detection": {"domain"},
    "maintenance": {"domain"},
    "storage": {"config", "domain"},
    "simulator": {"domain"},
    "alerts": {"config", "domain", "detection", "storage"},
    "jobs": {"config", "domain", "infra", "detection", "maintenance", "storage", "alerts"},
    "evaluation": {"domain", "detection", "maintenance", "simulator"},
    "services": {"config", "domain", "infra"},
    "schedule": {"config"},
    "celery": {"config", "domain", "infra", "storage", "jobs", "schedule"},
    "bridge": {"config", "domain", "infra", "celery"},
    "bench": {"config", "domain", "infra", "detection", "storage", "simulator", "services", "jobs"},
    "api": {"config", "domain", "infra", "storage", "jobs", "celery"},
    "cli": {
        "package", "config", "domain", "infra", "detection", "maintenance", "storage", "simulator", "alerts",
        "jobs", "evaluation", "services", "schedule", "celery", "bridge", "bench", "api",
    },
}

# Pure functions only: no service clients, no command-line toolkit.
SERVICE_LIBRARIES = ("psycopg", "sqlalchemy", "redis", "celery", "kombu", "paho", "fastapi", "click")
FORBIDDEN_LIBRARIES: dict[str, tuple[str, ...]] = {
    "detection": SERVICE_LIBRARIES,
    "maintenance": SERVICE_LIBRARIES,
    "evaluation": SERVICE_LIBRARIES,
    "domain": SERVICE_LIBRARIES,
    "storage": ("redis", "celery", "kombu", "paho", "fastapi", "click"),
}

SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|COPY)\b")
SQL_HOMES = ("gridmon.storage",)


@dataclass(frozen=True)
class Violation:
    module: str
    line: int
    problem: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line}: {self.problem}"


def component(module: str) -> str | None:
    """The component of a module; the bare `gridmon` prefix only names the package's __init__."""
    parts = module.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix == "gridmon" and cut < len(parts):
            return None
        found = COMPONENTS.get(prefix)
        if found is not None:
            return found
    return None


def _is_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _is_first_party(module: str) -> bool:
    return module.split(".")[0] in {"gridmon", "workers", "beat_schedule", "mqtt_bridge"}


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import statement, relative ones resolved."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # `from gridmon import storage` imports the module gridmon.storage.
                name = f"{base}.{alias.name}"
                yield (name if _is_first_party(base) and _is_module(name) else base), node.lineno


def _prose(tree: ast.AST) -> set[int]:
    """ids of string constants that are bare statements (docstrings, attribute docs)."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    }


def check_source(source: str, module: str, *, is_package: bool = False) -> list[Violation]:
    """Every layering and SQL-placement problem of one module's source."""
    tree = ast.parse(source)
    mine = component(module)
    if mine is None:
        return [Violation(module, 1, "belongs to no component: place it in COMPONENTS and docs/architecture.md")]
    problems: list[Violation] = []
    for target, line in imported_modules(tree, module, is_package):
        if _is_first_party(target):
            theirs = component(target)
            if theirs is None:
                problems.append(Violation(module, line, f"imports {target}, which belongs to no component"))
            elif theirs != mine and theirs not in MAY_IMPORT[mine]:
                problems.append(Violation(module, line, f"{mine} may not import {theirs} ({target})"))
        elif target.split(".")[0] in FORBIDDEN_LIBRARIES.get(mine, ()):
            problems.append(Violation(module, line, f"{mine} may not import {target.split('.')[0]}"))
    if not module.startswith(SQL_HOMES):
        prose = _prose(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose:
                match = SQL.search(node.value)
                if match:
                    problems.append(Violation(module, node.lineno, f"SQL ({match.group(1)}) outside gridmon/storage"))
    return problems


def project_modules() -> Iterator[tuple[str, Path]]:
    for top in ("gridmon", "workers"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path
    for name in ("mqtt_bridge", "beat_schedule"):
        yield name, ROOT / f"{name}.py"


def test_every_module_keeps_to_the_layer_order_and_sql_stays_in_storage() -> None:
    problems = [
        str(v)
        for module, path in project_modules()
        for v in check_source(path.read_text(), module, is_package=path.name == "__init__.py")
    ]
    assert problems == []


def test_the_walk_sees_the_whole_tree() -> None:
    modules = dict(project_modules())
    assert {"gridmon.storage.alerts", "gridmon.jobs.ingest", "workers.ingest", "beat_schedule", "mqtt_bridge"} <= set(
        modules
    )
    assert len(modules) > 100


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("gridmon.storage.x", "from gridmon.jobs.scan import run_scan\n", "storage may not import jobs"),
        ("gridmon.storage.x", "def f():\n    from gridmon.detection import base\n", "storage may not import detection"),
        ("gridmon.detection.x", "import gridmon.storage.db\n", "detection may not import storage"),
        ("gridmon.detection.x", "from gridmon.simulator.dataset import generate_dataset\n", "may not import simulator"),
        ("gridmon.maintenance.x", "import click\n", "maintenance may not import click"),
        ("gridmon.maintenance.x", "import redis\n", "maintenance may not import redis"),
        ("gridmon.detection.sub.x", "from ...storage import db\n", "detection may not import storage"),
        ("gridmon.domain.x", "from gridmon import jobs\n", "domain may not import jobs"),
        ("gridmon.jobs.x", "from gridmon.api.app import create_app\n", "jobs may not import api"),
        ("gridmon.celery", "from gridmon.api import create_app\n", "celery may not import api"),
        ("beat_schedule", "from gridmon.maintenance.model import MaintenanceConfig\n", "schedule may not import"),
        ("gridmon.api.routes.x", 'Q = "SELECT 1 FROM devices"\n', "SQL (SELECT) outside gridmon/storage"),
        ("workers.x", 'def f(c):\n    c.execute(f"DELETE FROM {t}")\n', "SQL (DELETE) outside gridmon/storage"),
        ("gridmon.newthing", "x = 1\n", "belongs to no component"),
        ("gridmon.api.x", "from gridmon.newthing import y\n", "belongs to no component"),
    ],
)
def test_the_check_catches_a_wrong_way_import_or_stray_sql(module: str, source: str, expected: str) -> None:
    problems = [str(v) for v in check_source(source, module)]
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("gridmon.jobs.x", "from gridmon.storage import db\nfrom gridmon.detection.safety import check_safety\n"),
        ("gridmon.storage.x", 'Q = "SELECT 1"\n'),
        ("gridmon.api.x", '"""Docstrings may say SELECT or COPY."""\n'),
        ("gridmon.detection.x", "from gridmon.domain.severity import SEVERITIES\nimport numpy\n"),
        ("gridmon.celery", "def f():\n    from beat_schedule import build_schedule\n"),
    ],
)
def test_the_check_accepts_imports_down_the_order(module: str, source: str) -> None:
    assert check_source(source, module) == []
