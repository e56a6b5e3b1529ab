"""The package's import graph, read from the source with every import counted (``TYPE_CHECKING`` blocks and
imports inside functions too): no import circle anywhere, and no upward import. The models (``core/rating``,
``core/ranking``) import neither the release wing (``core/release``) nor the serving layer; the release imports
no serving module; ``core`` imports nothing of ``defs``."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "recsys_assets"
SERVING = ("recsys_assets.core.recommender", "recsys_assets.core.serving", "recsys_assets.core.new_user")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}


def _resolve(name: str) -> str:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(name: str, path: Path) -> set[str]:
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {_resolve(a.name) for a in node.names if a.name.startswith("recsys_assets")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            if base.startswith("recsys_assets"):
                found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else _resolve(base) for a in node.names}
    return found - {name, ""}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _circles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return circles


def test_the_graph_reads_the_imports_it_must():
    """The reader itself: a module known to import another through a function-level import is seen to."""
    assert "recsys_assets.core.release.registry" in GRAPH["recsys_assets.cli"]
    assert "recsys_assets.core.release.lineage" in GRAPH["recsys_assets.defs.training"]


def test_no_import_circle_in_the_package():
    assert not _circles(), f"import circles: {_circles()}"


def _upward(lower: tuple[str, ...], upper: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{name} -> {dep}"
        for name, deps in GRAPH.items()
        if name.startswith(lower)
        for dep in deps
        if dep.startswith(upper)
    )


def test_the_models_import_neither_the_release_nor_serving():
    models = ("recsys_assets.core.rating", "recsys_assets.core.ranking")
    assert not _upward(models, ("recsys_assets.core.release", *SERVING))


def test_the_release_imports_no_serving_module_and_core_no_dagster_layer():
    assert not _upward(("recsys_assets.core.release",), SERVING)
    assert not _upward(
        ("recsys_assets.core",), ("recsys_assets.defs", "recsys_assets.definitions", "recsys_assets.cli")
    )
