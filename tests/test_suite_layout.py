"""The suite's own layout: test modules share helpers through tests/helpers.py (and fixtures
through tests/conftest.py), never by importing one another. And the repository's: tools/ and
benchmarks/ are packages whose commands run as `python -m`, with no sys.path edits anywhere."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

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


# ----- tools/ and benchmarks/: packages whose commands run as `python -m`, no sys.path edits -----

REPO = TESTS.parent
COMMAND_PACKAGES = ("tools", "benchmarks")
# sys.path.insert(...), .append, .extend, .remove; sys.path[:0] = ...; sys.path = ... / += ...
SYS_PATH_EDIT = re.compile(r"sys\.path\s*(\.\s*(insert|append|extend|remove)\s*\(|\[[^\]]*\]\s*=(?!=)|\+?=(?!=))")
SKIPPED_FOLDERS = {".git", "__pycache__", "tests", "output", "data"}


def repository_sources():
    """Every Python and shell file of the repository outside tests/ (and outside outputs and caches)."""
    found = []
    for path in REPO.rglob("*"):
        parts = set(path.relative_to(REPO).parts[:-1])
        if path.is_file() and not parts & SKIPPED_FOLDERS and (path.suffix in (".py", ".sh") or path.parent.name == ".ci"):
            found.append(path)
    return sorted(found)


def command_modules():
    """``tools.<name>`` and ``benchmarks.<name>`` modules with a ``if __name__ == "__main__":`` block."""
    modules = []
    for package in COMMAND_PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            if any(isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) for node in tree.body):
                modules.append(".".join(path.relative_to(REPO).with_suffix("").parts))
    return modules


def test_no_source_outside_the_tests_edits_sys_path():
    """tools/ and benchmarks/ are packages run with `python -m` from the repository root, which puts the
    root on the import path: no module (nor a script's inline python) inserts a folder itself."""
    sources = repository_sources()
    assert REPO / "tools" / "grid.py" in sources and REPO / "scripts" / "common.sh" in sources
    offenders = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
                 for path in sources
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
                 if SYS_PATH_EDIT.search(line)]
    assert not offenders, "run the command as `python -m <package>.<module>` instead:\n" + "\n".join(offenders)


def test_the_sys_path_check_finds_each_kind_of_edit():
    for line in ("sys.path.insert(0, REPO)", "sys.path.append(x)", "sys.path[:0] = [a, b]", "sys.path += [a]",
                 "sys.path = [a]", "python -c \"import sys; sys.path.insert(0, '.')\""):
        assert SYS_PATH_EDIT.search(line), line
    for line in ("print(sys.path)", "if sys.path == x:", "paths = list(sys.path)"):
        assert not SYS_PATH_EDIT.search(line), line


def test_tools_and_benchmarks_are_packages():
    for package in COMMAND_PACKAGES:
        assert (REPO / package / "__init__.py").is_file(), package


COMMANDS = command_modules()


def test_the_commands_are_found():
    assert {"tools.grid", "tools.ablation", "tools.bench", "benchmarks.targets", "benchmarks.ordering",
            "benchmarks.pretrain_mini_clip"} <= set(COMMANDS)
    assert "tools.gridlib" not in COMMANDS and "tools.benchlib" not in COMMANDS  # libraries, not commands


@pytest.mark.parametrize("module", COMMANDS)
def test_every_command_runs_with_python_m_from_the_repository_root(module):
    proc = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage: "), proc.stdout[:500]
