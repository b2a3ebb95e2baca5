"""The test suite's own layout: test modules share helpers through tests/helpers.py (and fixtures
through tests/conftest.py), never by importing one another."""

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def imported_modules(path: Path) -> set:
    """The top-level names of every module ``path`` imports, at any depth of its code."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_test_module_imports_another():
    files = sorted(TESTS.glob("*.py"))
    imports = {path.name: imported_modules(path) for path in files}
    assert "helpers" in imports["conftest.py"] and "helpers" in imports["test_bad_inputs.py"]
    offenders = [f"{name} imports {', '.join(sorted(module for module in modules if module.startswith('test_')))}"
                 for name, modules in imports.items() if any(module.startswith("test_") for module in modules)]
    assert not offenders, "import shared helpers from tests/helpers.py instead:\n" + "\n".join(offenders)
