"""The shape of the code, read with ``ast`` (nothing is imported):

- ``unith_shell.server`` has no import cycle and never reaches ``unith_shell.builtins``;
- no test module imports another test module (shared helpers live in tests/support.py);
- every in-process ``Shell`` in the tests comes from the one factory, ``support.new_shell``.

Imports inside ``if TYPE_CHECKING:`` and inside functions count too: a cycle a type checker
or a late import walks is still a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import REPO

PACKAGE = REPO / "unith_shell"
TESTS = REPO / "tests"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute, with ``from X import name`` also giving
    ``X.name`` (it may be a submodule)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the ``unith_shell`` package it imports directly."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        if not path.is_relative_to(root):
            continue
        graph[name] = {m for m in _imports(path) if m in modules and m != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle among the modules of ``graph``, or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done or node not in graph:
            return None
        for nxt in sorted(graph[node]):
            found = visit(nxt, [*path, node])
            if found:
                return found
        done.add(node)
        return None

    for start in sorted(graph):
        found = visit(start, [])
        if found:
            return found
    return None


def test_the_server_package_has_no_import_cycle() -> None:
    graph = _graph(PACKAGE / "server")
    assert len(graph) >= 10  # the check sees the whole package
    # A package's __init__ re-exports its modules: that is not a cycle between them.
    inner = {
        name: {m for m in deps if m != "unith_shell.server"}
        for name, deps in graph.items()
        if name != "unith_shell.server"
    }
    cycle = _cycle(inner)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_server_never_reaches_the_builtins() -> None:
    whole = _graph(PACKAGE)
    seen: set[str] = set()
    todo = [name for name in whole if name.startswith("unith_shell.server")]
    via: dict[str, str] = {}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for dep in whole.get(name, ()):
            via.setdefault(dep, name)
            todo.append(dep)
    reached = sorted(m for m in seen if m.startswith("unith_shell.builtins"))
    if reached:
        chain = [reached[0]]
        while chain[-1] in via and not chain[-1].startswith("unith_shell.server"):
            chain.append(via[chain[-1]])
        pytest.fail("the server imports the builtins: " + " <- ".join(chain))


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def _test_files() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py"))


def _is_test_module(module: str) -> bool:
    last = module.rpartition(".")[2]
    return last.startswith("test_") or last == "conftest"


def test_no_test_module_imports_another_test_module() -> None:
    offenders = []
    for path in _test_files():
        for module in _imports(path):
            # `from tests import test_x` gives "tests.test_x" too.
            local = module.startswith("tests.") or "." not in module
            if local and _is_test_module(module):
                offenders.append(f"{path.relative_to(REPO)} imports {module}")
    assert offenders == [], "move shared helpers to tests/support.py:\n" + "\n".join(offenders)


def test_the_import_reader_resolves_relative_imports() -> None:
    assert "unith_shell.server.config" in _imports(PACKAGE / "server" / "app.py")
    assert "unith_shell.server.app" in _imports(PACKAGE / "server" / "__init__.py")
    assert "tests.support" in _imports(TESTS / "test_layout.py")


def test_every_shell_in_the_tests_comes_from_the_one_factory() -> None:
    offenders = []
    for path in _test_files():
        if path.name == "support.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if name == "Shell":
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == [], "build shells with tests.support.new_shell: " + ", ".join(offenders)
