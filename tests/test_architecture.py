"""The package's layers: imports go one way, down, with no import circle and no import hidden in a function.

docs/architecture.md draws the same map. A module joins a layer by its place in ``LAYERS``.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest
from conftest import REPO

PACKAGE = REPO / "ddrnet_zoo"

# Lowest first. A module may import modules of its own layer or below, never above.
# The longest matching prefix places a module.
LAYERS: List[Tuple[str, Tuple[str, ...]]] = [
    (
        "foundation",
        (
            "ddrnet_zoo._version",
            "ddrnet_zoo.errors",
            "ddrnet_zoo.text",
            "ddrnet_zoo.constants",
            "ddrnet_zoo.device",
            "ddrnet_zoo.io",
            "ddrnet_zoo.benchmark",
            "ddrnet_zoo.published",
        ),
    ),
    ("data", ("ddrnet_zoo.data", "ddrnet_zoo.metrics", "ddrnet_zoo.losses", "ddrnet_zoo.layouts")),
    ("models", ("ddrnet_zoo.models", "ddrnet_zoo.flops")),
    (
        "weights and inference",
        (
            "ddrnet_zoo.convert",
            "ddrnet_zoo.hub",
            "ddrnet_zoo.inference",
        ),
    ),
    ("engine", ("ddrnet_zoo.engine",)),
    (
        "command line",
        (
            "ddrnet_zoo.train",
            "ddrnet_zoo.evaluate",
            "ddrnet_zoo.predict",
            "ddrnet_zoo.export",
            "ddrnet_zoo.convert.cli",
            "ddrnet_zoo.convert.__main__",
        ),
    ),
]
FACADE = "ddrnet_zoo"  # the package's __init__ re-exports the public API from every layer


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


MODULES: Dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    best, level = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, level = len(prefix), i
    if level is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_architecture.py")
    return level


def internal_imports(module: str, path: Path) -> List[Tuple[str, int, bool]]:
    """(imported module, line, inside a function) for each import of a ddrnet_zoo module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: List[Tuple[str, int, bool]] = []

    def targets(node) -> List[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        base = package[: len(package) - node.level + 1] if node.level else []
        stem = ".".join(base + ([node.module] if node.module else []))
        return [f"{stem}.{a.name}" if f"{stem}.{a.name}" in MODULES else stem for a in node.names]

    def visit(node, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for t in targets(child):
                    if t.split(".")[0] == "ddrnet_zoo" and t != module:
                        found.append((t, child.lineno, in_function))
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, nested)

    visit(tree, False)
    return found


EDGES = {m: internal_imports(m, p) for m, p in MODULES.items()}


def test_every_module_has_a_layer():
    for module in MODULES:
        if module != FACADE:
            layer_of(module)


def test_no_import_inside_a_function():
    hidden = [f"{MODULES[m].relative_to(REPO)}:{line} imports {t}" for m, es in EDGES.items() for t, line, f in es if f]
    assert not hidden, "imports of ddrnet_zoo modules inside functions:\n" + "\n".join(hidden)


def test_imports_go_down():
    upward = []
    for module, edges in EDGES.items():
        if module == FACADE:
            continue
        for target, line, _ in edges:
            if target == FACADE:
                upward.append(f"{MODULES[module].relative_to(REPO)}:{line} imports the package facade {target}")
            elif layer_of(target) > layer_of(module):
                upward.append(
                    f"{MODULES[module].relative_to(REPO)}:{line} ({LAYERS[layer_of(module)][0]}) imports "
                    f"{target} ({LAYERS[layer_of(target)][0]})"
                )
    assert not upward, "imports that go up a layer:\n" + "\n".join(upward)


def test_no_import_circle():
    graph: Dict[str, Set[str]] = {m: {t for t, _, _ in es if t in MODULES} for m, es in EDGES.items()}
    for module in list(graph):  # importing a.b.c first runs the packages a and a.b (unless already inside them)
        for target in list(graph[module]):
            parts = target.split(".")
            for i in range(2, len(parts)):
                package = ".".join(parts[:i])
                if package in MODULES and module != package and not module.startswith(package + "."):
                    graph[module].add(package)
    graph.pop(FACADE, None)
    for edges in graph.values():
        edges.discard(FACADE)
    state: Dict[str, int] = {}
    stack: List[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node)


def _all_and_defined(path: Path) -> Tuple[List[str], Set[str]]:
    """A module's ``__all__`` and the names its top level defines (functions, classes, assignments)."""
    exported: List[str] = []
    defined: Set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        for target in targets:
            if isinstance(target, ast.Name):
                defined.add(target.id)
                if target.id == "__all__":
                    exported = [ast.literal_eval(e) for e in node.value.elts]
    return exported, defined


def test_a_module_exports_only_what_it_defines():
    """Re-exports are the packages' faces (``__init__``), never another module's ``__all__``."""
    foreign = {}
    for module, path in MODULES.items():
        if path.name in ("__init__.py", "__main__.py"):
            continue
        exported, defined = _all_and_defined(path)
        if set(exported) - defined:
            foreign[module] = sorted(set(exported) - defined)
    assert foreign == {}, f"names exported by a module that does not define them: {foreign}"


def test_public_names_have_one_package_face_below_the_facade():
    """A name is re-exported by at most one subpackage ``__init__`` (the top-level facade aside)."""
    faces: Dict[str, List[str]] = {}
    for module, path in MODULES.items():
        if path.name == "__init__.py" and module != FACADE:
            for name in _all_and_defined(path)[0]:
                faces.setdefault(name, []).append(module)
    assert {n: m for n, m in faces.items() if len(m) > 1} == {}
