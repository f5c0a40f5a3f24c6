"""Imports only go down: the rooms of docs/architecture.md, checked from the source with ast.

Every ``import`` and ``from … import`` under src/auditkeep counts, including those inside
functions and under ``if TYPE_CHECKING:`` (a type-only import is still a dependency a reader
has to follow).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "auditkeep"

#: The rooms from the bottom up. A room may import rooms of a lower layer, never of its own
#: layer or above (docs/architecture.md draws the same picture).
LAYERS: list[set[str]] = [
    {"fastschema"},
    {"errors", "model", "logs", "logwatch", "monitor", "integrity"},
    {"settings", "bodies", "keyfile"},
    {"store"},
    {"translog", "auth", "query", "ingest", "delivery"},
    {"core"},
    {"api", "web", "console"},
    {"cli"},
]

#: Imports within one layer that are allowed, with the reason. web/ is the browser side of
#: the HTTP layer: api/app.py mounts it, and it uses api/http.py's route wrapper.
#: console/ is the server-rendered pages of the same layer: api/app.py mounts them, and they use
#: api/http.py's route wrapper and the core through it.
SAME_LAYER = {("api", "web"), ("web", "api"), ("api", "console"), ("console", "api")}


def room_of(path: Path) -> str:
    return path.relative_to(SRC).parts[0].removesuffix(".py")


def auditkeep_imports(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every absolute import of an auditkeep module in ``path``;
    ``from auditkeep import x`` is reported as ``auditkeep.x``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: use absolute imports"
            if node.module == "auditkeep":
                found += [(node.lineno, f"auditkeep.{a.name}") for a in node.names]
            elif node.module is not None:
                found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name.split(".")[0] == "auditkeep"]


def edges() -> list[tuple[str, str, str]]:
    """(importing room, imported room, where) for every import that crosses rooms."""
    out = []
    for path in sorted(SRC.rglob("*.py")):
        room = room_of(path)
        for line, name in auditkeep_imports(path):
            parts = name.split(".")
            if len(parts) < 2 or parts[1] == "__version__" or parts[1] == room:
                continue
            out.append((room, parts[1], f"{path.relative_to(SRC.parent)}:{line} imports {name}"))
    return out


EDGES = edges()


def imported_by(room: str) -> set[str]:
    return {target for source, target, _ in EDGES if source == room}


def test_the_parser_sees_the_imports_we_know_of() -> None:
    # a guard against a check that passes because it reads nothing
    assert "integrity" in imported_by("store")  # the store updates the tree in its transaction
    assert {"store", "integrity"} <= imported_by("translog")
    assert "translog" in imported_by("core")
    assert "translog" in imported_by("api")
    assert "translog" in imported_by("cli")
    assert "api" in imported_by("cli")  # serve's lazy import, inside a function


def test_every_room_has_a_layer() -> None:
    rooms = {room_of(p) for p in SRC.rglob("*.py")} - {"__init__"}
    placed = set().union(*LAYERS)
    assert rooms - placed == set(), "new rooms: add them to LAYERS and docs/architecture.md"
    assert placed - rooms == set(), "rooms in LAYERS that no longer exist"


def test_imports_only_go_down() -> None:
    layer = {room: i for i, rooms in enumerate(LAYERS) for room in rooms}
    upward = [
        where
        for source, target, where in EDGES
        if layer[target] > layer[source]
        or (layer[target] == layer[source] and (source, target) not in SAME_LAYER)
    ]
    assert upward == []


def test_integrity_imports_nothing_of_auditkeep_but_itself() -> None:
    assert [where for source, _, where in EDGES if source == "integrity"] == []


def test_store_imports_neither_api_cli_nor_the_log_service() -> None:
    bad = [w for s, t, w in EDGES if s == "store" and t in {"api", "cli", "translog", "core"}]
    assert bad == []


def test_api_never_imports_cli_and_only_cli_imports_cli() -> None:
    assert [where for _, target, where in EDGES if target == "cli"] == []


def test_the_log_service_is_imported_as_a_package() -> None:
    """Outside translog/, callers import ``auditkeep.translog`` (its ``__all__``), not its
    modules, so the modules can be rearranged without touching callers."""
    deep = [
        f"{path.relative_to(SRC.parent)}:{line} imports {name}"
        for path in sorted(SRC.rglob("*.py"))
        if room_of(path) != "translog"
        for line, name in auditkeep_imports(path)
        if name.startswith("auditkeep.translog.")
    ]
    assert deep == []


@pytest.mark.parametrize("package", ["auditkeep.integrity", "auditkeep.translog"])
def test_public_names_are_re_exported(package: str) -> None:
    module = importlib.import_module(package)
    names = module.__all__
    assert len(names) == len(set(names))
    assert [n for n in names if not hasattr(module, n)] == []
