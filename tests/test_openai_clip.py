"""clipprompt/clip/openai_clip.py: importing clip through the toolkit shows no pkg_resources warning, and
hides nothing else. Run in fresh interpreters with -W default, since pytest.ini ignores that warning."""

import ast
import os
import subprocess
import sys

import pytest

from conftest import REPO

TOOLKIT = ("clipprompt", "benchmarks", "tools", "train.py")


def python_stderr(code):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    proc = subprocess.run([sys.executable, "-W", "default", "-c", code], cwd=REPO, env=dict(env, OMP_NUM_THREADS="1"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


@pytest.fixture(scope="module")
def clip_warns():
    if "pkg_resources is deprecated" not in python_stderr("import clip"):
        pytest.skip("this clip/setuptools pair does not warn about pkg_resources: nothing to hide")


def test_importing_the_clip_loader_shows_no_pkg_resources_warning(clip_warns):
    assert "pkg_resources" not in python_stderr("import clipprompt.clip.loader, clipprompt.clip.backbone")


def test_other_warnings_and_later_pkg_resources_ones_are_still_shown(clip_warns):
    stderr = python_stderr("import warnings\nimport clipprompt.clip.loader\n"
                           "warnings.warn('another warning', UserWarning)\n"
                           "warnings.warn('pkg_resources is deprecated (from elsewhere)', UserWarning)\n")
    assert "UserWarning: another warning" in stderr
    assert "pkg_resources is deprecated (from elsewhere)" in stderr  # only clip's import was quietened


def clip_imports(path):
    tree = ast.parse(open(path).read(), path)
    for node in ast.walk(tree):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
        if any(name == "clip" or name.startswith("clip.") for name in names):
            yield f"{os.path.relpath(path, REPO)}:{node.lineno}"


def test_the_toolkit_imports_clip_only_through_the_helper():
    found = []
    for top in TOOLKIT:
        paths = [os.path.join(REPO, top)] if top.endswith(".py") else [
            os.path.join(root, name) for root, _, files in os.walk(os.path.join(REPO, top)) for name in files
            if name.endswith(".py")]
        found += [where for path in paths for where in clip_imports(path)]
    # The parity worker runs inside the official code's process and imports *its* fork of clip (the
    # worker checks it came from the official checkout), never OpenAI's package through the toolkit.
    official = [where for where in found if where.startswith("tools/parity_forward_worker.py:")]
    assert len(official) == 1, official
    others = [where for where in found if not where.startswith("clipprompt/clip/openai_clip.py:") and where not in official]
    assert found and not others, others
