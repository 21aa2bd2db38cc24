"""The house's import graph, function-level imports included: no circle, no private name across modules."""

from __future__ import annotations

import ast
from pathlib import Path

import tlgeom

PACKAGE = Path(tlgeom.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, str, int]]:
    """(imported module, imported name or "", line) of every import in the module, at any depth."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in modules:
                    found.append((sub, "", node.lineno))
                elif base in modules:
                    found.append((base, alias.name, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name, "", node.lineno) for a in node.names if a.name in modules]
    return found


def test_no_import_circle_even_through_function_level_imports():
    modules = _modules()
    graph = {m: sorted({t for t, _, _ in _imports(m, p, modules) if t != m}) for m, p in modules.items()}
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []
    circles = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in graph[m]:
            if state.get(t) == 1:
                circles.append(stack[stack.index(t) :] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


def test_no_private_name_is_imported_across_modules():
    """``from tlgeom.x import _name`` reaches into another module's internals: a shared helper gets a public
    name (the house's private modules, ``tlgeom._args`` and friends, are imported as modules or by their
    public names)."""
    modules = _modules()
    found = [
        f"{m}:{line} imports {t}.{n}"
        for m, p in modules.items()
        for t, n, line in _imports(m, p, modules)
        if n.startswith("_") and not n.startswith("__") and t != m
    ]
    assert not found, "\n".join(found)
