"""Which package may import which: the layering of README ("Layout"), read from the source.

Every import statement counts, those inside functions too: a deferred import is still a
dependency. The check parses the files (ast); it imports nothing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# package -> the first-party packages it must not import
FORBIDDEN = {
    "foundation": {"workers", "clients", "payments", "cashback", "celgate", "sandbox"},
    "workers": {"payments", "cashback", "clients", "celgate", "sandbox"},
    "clients": {"sandbox", "workers", "payments", "cashback", "celgate"},
    "payments": {"sandbox", "celgate"},
    "cashback": {"sandbox", "celgate"},
}


def imported_packages(source: str) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in `source`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
        elif isinstance(node, ast.Call) and _dynamic_import(node):
            found.append((node.lineno, node.args[0].value.split(".")[0]))
    return found


def _dynamic_import(node: ast.Call) -> bool:
    """`importlib.import_module("x.y")` or `__import__("x")` with a literal name."""
    name = (node.func.attr if isinstance(node.func, ast.Attribute)
            else node.func.id if isinstance(node.func, ast.Name) else "")
    return (name in ("import_module", "__import__") and bool(node.args)
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str))


def violations(package: str) -> list[str]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, imported in imported_packages(path.read_text(encoding="utf-8")):
            if imported in FORBIDDEN[package]:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_only_the_layers_below_it(package: str) -> None:
    assert violations(package) == []


@pytest.mark.parametrize("source", [
    "import payments\n",
    "import os, payments.tasks as tasks\n",
    "from payments.orders import Order\n",
    "def later():\n    from payments import steps\n",
    "class A:\n    def f(self):\n        import payments.tasks\n",
    "import importlib\nimportlib.import_module('payments.tasks')\n",
])
def test_the_check_sees_every_kind_of_import(source: str) -> None:
    assert "payments" in {name for _, name in imported_packages(source)}


def test_relative_imports_stay_inside_the_package() -> None:
    # A relative import cannot leave its package, so the rules above need not follow it.
    assert imported_packages("from . import x\nfrom .y import z\n") == []
