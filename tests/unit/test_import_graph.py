"""The house's import rules, read from the source (every import: module level, inside
functions and under TYPE_CHECKING): no circle, no edge up a layer, and no private name
(``_name``) imported from another alphaforge module: what modules share is public.

Layers, bottom first: foundations (errors, settings, hashing, actor, logs) < storage, auth,
marketdata, ingestion, plugins, evaluation, schemas, tracking, context (infrastructure and
pure code)
< features, training, tuning, tasks, universes (the domains) < api, cli, bootstrap, web (entry points);
client (the HTTP client) stands apart: it speaks to the API over HTTP and imports no other layer. Domains may
import each other (tuning uses training) as long as no circle forms.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
LOWER = {"errors", "settings", "hashing", "actor", "logs", "storage", "auth", "marketdata", "ingestion", "plugins",
         "evaluation", "schemas", "tracking", "context", "expressions"}
DOMAINS = {"features", "training", "tuning", "tasks", "universes"}
ENTRY = {"api", "cli", "bootstrap", "web"}
#: Talks to a running service over HTTP only: it may import nothing of the service itself.
CLIENT = "client"


def _modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "alphaforge").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                targets |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _layer(module: str) -> str:
    return module.split(".")[1] if "." in module else module


def test_no_import_circle() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            circle = visit(module)
            assert circle is None, " -> ".join(circle or [])


def test_no_import_points_up_a_layer() -> None:
    upward = []
    for module, targets in _graph().items():
        for target in targets:
            low, high = _layer(module), _layer(target)
            if (low in LOWER and high in DOMAINS | ENTRY) or (low in DOMAINS and high in ENTRY):
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_every_top_level_name_has_a_layer() -> None:
    names = {_layer(m) for m in _modules() if m != "alphaforge"}
    assert names <= LOWER | DOMAINS | ENTRY | {CLIENT, "__main__"}, names - (LOWER | DOMAINS | ENTRY | {CLIENT})


def test_the_client_imports_nothing_of_the_service() -> None:
    """A notebook's ``pip install alphaforge`` client must not drag the service in: the client
    package imports only itself (the CLI entry point may import the client, not the reverse)."""
    reaching = [f"{m} -> {t}" for m, targets in _graph().items() if _layer(m) == CLIENT
                for t in targets if _layer(t) != CLIENT]
    assert reaching == []


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_private_name_is_imported_across_modules() -> None:
    """``from alphaforge.x import _helper`` couples two modules through a name the first
    never promised to keep: a shared helper gets a public home instead. A private module
    (``testing/_core.py``) may be imported by the modules of its own package only."""
    modules = _modules()
    found = []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            if base.split(".")[0] != "alphaforge":
                continue
            for alias in node.names:
                target = f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                parts = target.split(".")
                private_module = next((i for i, part in enumerate(parts) if _private(part)), None)
                owner = ".".join(parts[:private_module]) if private_module is not None else ""
                if private_module is not None and name != owner and not name.startswith(owner + "."):
                    found.append(f"{name} imports {target}")
                elif target == base and _private(alias.name):
                    found.append(f"{name} imports {base}.{alias.name}")
    assert found == []
