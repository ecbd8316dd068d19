"""The shape of ``fazt.realtime``: the pure modules never import Tornado, and no module
imports another in a circle (``TYPE_CHECKING`` imports included)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import fazt.realtime

PACKAGE = Path(fazt.realtime.__file__).resolve().parent


def _pure_modules() -> tuple[str, ...]:
    """The modules that must run without Tornado (the sans-I/O core): those the
    import-linter contract in pyproject.toml names, which it checks statically."""
    pyproject = (PACKAGE.parent.parent / "pyproject.toml").read_text(encoding="utf-8")
    contract = pyproject.split('name = "The realtime core does not know Tornado"', 1)[1]
    listed = contract.split("source_modules = [", 1)[1].split("]", 1)[0]
    return tuple(
        line.strip().strip('",').removeprefix("fazt.realtime.")
        for line in listed.splitlines()
        if line.strip()
    )


PURE = _pure_modules()


def test_the_contract_names_the_sans_io_core() -> None:
    for name in (
        "channels",
        "commands",
        "fanout",
        "feed",
        "hub",
        "lifecycle",
        "membership",
        "protocol",
        "session",
    ):
        assert name in PURE, name


@pytest.mark.parametrize("name", PURE)
def test_a_pure_module_never_imports_tornado(name: str) -> None:
    code = (
        f"import sys, fazt.realtime.{name}; "
        "found = sorted(m for m in sys.modules if m == 'tornado' or m.startswith('tornado.')); "
        "print(','.join(found))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "", f"fazt.realtime.{name} imports {result.stdout.strip()}"


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every ``fazt.realtime`` module ``path`` imports, wherever the import statement is."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("fazt.realtime")}


def test_no_import_circles_inside_fazt_realtime() -> None:
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {
        name: {other for other in _imports(path) if other in modules and other != name}
        for name, path in modules.items()
    }
    # Depth-first search for a back edge; report the circle it closes.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for other in sorted(graph[name]):
            if state.get(other) == 1:
                circle = [*stack[stack.index(other) :], other]
                raise AssertionError("import circle: " + " -> ".join(circle))
            if other not in state:
                visit(other)
        stack.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert "fazt.realtime.hub" in graph and graph["fazt.realtime.handler"]
