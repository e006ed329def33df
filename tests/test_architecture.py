"""The import graph of dbkit and its connectors: no cycle, connectors on the public API only, and
the layers one way.

Every ``.py`` file under ``dbkit/`` and ``connectors/`` (code and tests) is parsed; every import
counts, at module level, inside a function (lazy) or under ``if TYPE_CHECKING:``. Relative
imports are resolved, and ``from package import submodule`` is an import of the submodule. An
import of ``a.b.c`` is an edge to ``a.b.c`` only: that Python runs ``a/__init__`` and
``a/b/__init__`` first is no edge (so a package ``__init__`` may import its own submodules, and
no submodule may import from its own package's ``__init__``).

The layers, each importing only the ones after it (never the other way):
connectors -> ``dbkit.source`` / ``dbkit.destination`` -> ``dbkit.db`` -> ``dbkit.protocol``.
``dbkit.protocol`` imports nothing else of ours, ``dbkit.source`` and ``dbkit.destination`` not
each other, and nothing in ``dbkit`` imports a connector (``dbkit sync`` finds them through
entry points).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# a connector may import these dbkit modules: the top level and the packages' __init__ (checked
# against the tree: every one must be a package); nothing deeper
LAYERS = {"dbkit.protocol": 0, "dbkit.db": 1, "dbkit.source": 2, "dbkit.destination": 2}
CONNECTOR_LAYER = 3


@dataclass
class Module:
    name: str  # dotted; a connector's test file is "connectors/<dir>/tests/x.py" (not importable)
    path: Path
    is_package: bool
    connector: str | None  # the connectors/<dir> it belongs to, if any
    imports: list[tuple[str, int]] = field(default_factory=list)  # (imported name, line)


def _modules() -> dict[str, Module]:
    found: dict[str, Module] = {}
    for path in sorted((ROOT / "dbkit").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        found_module(found, parts, path, None)
    for path in sorted((ROOT / "connectors").rglob("*.py")):
        rel = path.relative_to(ROOT / "connectors")
        connector, inner = rel.parts[0], list(rel.with_suffix("").parts[1:])
        if inner and inner[0] == "tests":
            name = str(path.relative_to(ROOT))
            found[name] = Module(name, path, False, connector)
        else:
            found_module(found, inner, path, connector)
    return found


def found_module(found: dict[str, Module], parts: list[str], path: Path, connector: str | None) -> None:
    is_package = parts[-1] == "__init__"
    name = ".".join(parts[:-1] if is_package else parts)
    found[name] = Module(name, path, is_package, connector)


def _package_of(module: Module) -> str:
    return module.name if module.is_package else module.name.rpartition(".")[0]


def _imports(module: Module, known: dict[str, Module]) -> Iterator[tuple[str, int]]:
    """Every import of ``module``, as the name of the module it loads (ours or not)."""
    tree = ast.parse(module.path.read_text(), str(module.path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = _package_of(module).split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield (submodule if submodule in known else base), node.lineno


@dataclass
class Graph:
    modules: dict[str, Module]
    edges: dict[str, set[str]]

    def where(self, source: str, target: str) -> str:
        lines = sorted({line for name, line in self.modules[source].imports if name == target})
        rel = self.modules[source].path.relative_to(ROOT)
        return f"{rel}:{','.join(map(str, lines))}"


def build_graph() -> Graph:
    modules = _modules()
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for module in modules.values():
        module.imports = [(name, line) for name, line in _imports(module, modules) if name in modules]
        edges[module.name] = {name for name, _ in module.imports if name != module.name}
    return Graph(modules, edges)


GRAPH = build_graph()


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(edges[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return out


def _layer(module: Module) -> int | None:
    if module.connector is not None:
        return CONNECTOR_LAYER
    for prefix, layer in LAYERS.items():
        if module.name == prefix or module.name.startswith(prefix + "."):
            return layer
    return None


def _top(name: str) -> str:
    return ".".join(name.split(".")[:2])


def _report(problems: list[str], what: str) -> str:
    return f"{len(problems)} {what}:\n  " + "\n  ".join(problems)


def test_the_graph_sees_the_whole_tree() -> None:
    """A sanity check of the walker itself: it finds lazy and TYPE_CHECKING imports."""
    assert "dbkit.protocol" in GRAPH.modules
    assert GRAPH.modules["dbkit.protocol"].is_package
    assert "source_sqlite" in GRAPH.modules
    assert any(m.connector and "tests" in m.path.parts for m in GRAPH.modules.values())
    assert "dbkit.config" in GRAPH.edges["dbkit"]  # under TYPE_CHECKING only
    assert "dbkit.runner.demo" in GRAPH.edges["dbkit.cli"]  # inside a function only


def test_no_import_cycle() -> None:
    problems = []
    for cycle in _cycles(GRAPH.edges):
        members = set(cycle)
        arrows = [
            f"{source} -> {target} ({GRAPH.where(source, target)})"
            for source in cycle
            for target in sorted(GRAPH.edges[source] & members)
        ]
        problems.append(" <-> ".join(cycle) + "\n      " + "\n      ".join(arrows))
    assert not problems, _report(problems, "import cycles (lazy and TYPE_CHECKING imports count)")


def test_connectors_import_only_the_public_api() -> None:
    """Code and tests of a connector import from ``dbkit`` and its packages' ``__init__`` only."""
    problems = []
    for module in GRAPH.modules.values():
        if module.connector is None:
            continue
        for target in sorted(GRAPH.edges[module.name]):
            imported = GRAPH.modules[target]
            if imported.connector is None and not imported.is_package:
                problems.append(f"{target} ({GRAPH.where(module.name, target)})")
    assert not problems, _report(problems, "imports of dbkit internals by connectors")


def test_the_protocol_package_imports_nothing_else_of_ours() -> None:
    problems = [
        f"{source} -> {target} ({GRAPH.where(source, target)})"
        for source, targets in GRAPH.edges.items()
        if _top(source) == "dbkit.protocol"
        for target in sorted(targets)
        if _top(target) != "dbkit.protocol"
    ]
    assert not problems, _report(problems, "imports out of dbkit.protocol")


def test_the_layers_import_one_way() -> None:
    """connectors -> dbkit.source / dbkit.destination -> dbkit.db -> dbkit.protocol; source and
    destination are independent; dbkit never imports a connector."""
    problems = []
    for source, targets in GRAPH.edges.items():
        module = GRAPH.modules[source]
        for target in sorted(targets):
            imported = GRAPH.modules[target]
            if module.connector is None and imported.connector is not None:
                problems.append(f"{source} -> connector {target} ({GRAPH.where(source, target)})")
                continue
            upper, lower = _layer(module), _layer(imported)
            if upper is None or lower is None or module.connector is not None:
                continue
            if lower > upper or (lower == upper and _top(source) != _top(target)):
                problems.append(f"{source} -> {target} ({GRAPH.where(source, target)})")
    assert not problems, _report(problems, "imports against the layers")
