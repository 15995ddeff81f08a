"""The package's architecture, checked: sub-packages form layers, nothing imports upward,
and no two modules import each other (not even for type hints or inside a function).

Every ``import``/``from ... import`` of ``ssl_bench`` anywhere in a module counts, so a
function-local or ``TYPE_CHECKING`` import cannot hide a dependency. The layer order is
the one CONTRIBUTING.md's "How the pieces fit" table shows.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ssl_bench"
#: The built-in methods (installed as ``ssl_bench.methods``): built from method_kit and
#: what lies below it, never from the training loop or anything above.
METHODS = Path(__file__).resolve().parents[1] / "methods"
METHODS_MAY_IMPORT = ("core", "plugins", "data", "models", "config", "method_kit", "methods")
#: Lowest first: a layer may import only the layers before it (and itself).
LAYERS = ("core", "plugins", "runs", "tracking", "data", "models", "config", "method_kit",
          "training", "sweeps", "tuning", "compare", "inference", "cli")
#: Top-level modules: the package's face, above every layer.
TOP = ("ssl_bench", "ssl_bench.api", "ssl_bench.__main__")


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _owner(name: str) -> str | None:
    """The module ``name`` (a module, or a name inside one) refers to."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                found.add(target if target in MODULES else _owner(node.module))
        elif isinstance(node, ast.Import):
            found.update(_owner(alias.name) for alias in node.names)
    return {t for t in found if t and t.startswith("ssl_bench") and t != module}


GRAPH = {module: _imports(module) for module in MODULES}


def _layer(module: str) -> int:
    if module in TOP:
        return len(LAYERS)
    return LAYERS.index(module.split(".")[1])


def test_every_module_belongs_to_a_layer() -> None:
    homeless = [m for m in MODULES if m not in TOP and m.split(".")[1] not in LAYERS]
    assert not homeless, f"modules outside every layer (add a folder to LAYERS): {homeless}"


def test_no_module_imports_a_higher_layer() -> None:
    upward = [f"{m} -> {t}" for m, targets in GRAPH.items() for t in targets
              if _layer(t) > _layer(m)]
    assert not upward, "imports from a higher layer:\n" + "\n".join(sorted(upward))


def test_no_import_cycle() -> None:
    """Tarjan's strongly connected components of the module graph: all of size one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    assert not cycles, f"import cycles: {cycles}"


def test_methods_are_built_from_method_kit_and_below() -> None:
    wrong = []
    for path in sorted(METHODS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                parts = name.split(".")
                if parts[0] == "ssl_bench" and (len(parts) < 2
                                                or parts[1] not in METHODS_MAY_IMPORT):
                    wrong.append(f"methods/{path.name} imports {name}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
])
def test_the_cycle_check_finds_a_cycle(monkeypatch: pytest.MonkeyPatch,
                                       graph: dict[str, set[str]],
                                       expected: list[list[str]]) -> None:
    """The check above can fail: on a hand-made graph with a cycle it does."""
    monkeypatch.setitem(globals(), "GRAPH", graph)
    if expected:
        with pytest.raises(AssertionError, match=r"\['a', 'b'\]"):
            test_no_import_cycle()
    else:
        test_no_import_cycle()
