"""scripts/install_dassl.sh without internet and without installing anything: a fake PYTHON records
the pip calls and, like pip on a source folder, writes build/ and dassl.egg-info/ into the folder it
is given. (The failed-clone message itself is tested in test_scripts.py.)"""

import hashlib
import json
import os
import subprocess

import pytest

from conftest import run_cli, write_fake_python

# Writes where real pip writes when it builds a source folder in place.
FAKE_PYTHON = r'''
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_CALLS"], "a") as f:
    f.write(json.dumps(args) + "\n")
if args[:2] == ["-m", "pip"] and os.path.isdir(args[-1]):
    os.makedirs(os.path.join(args[-1], "build", "lib", "dassl"), exist_ok=True)
    os.makedirs(os.path.join(args[-1], "dassl.egg-info"), exist_ok=True)
    with open(os.path.join(args[-1], "dassl.egg-info", "PKG-INFO"), "w") as f:
        f.write("Name: dassl\n")
elif args[:1] == ["-c"]:
    print("installed dassl 0.6.3 into fake")
'''


def write_dassl_tree(folder, version="0.6.3"):
    (folder / "dassl").mkdir(parents=True)
    (folder / "setup.py").write_text("from setuptools import setup\nsetup(name='dassl')\n")
    (folder / "dassl" / "__init__.py").write_text(f'"""Dassl"""\n\n__version__ = "{version}"\n')
    return folder


def git(folder, *args):
    return subprocess.run(["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


def git_checkout(folder):
    """A Dassl tree committed in its own repository; returns (folder, its commit)."""
    write_dassl_tree(folder)
    git(folder, "init", "-q")
    git(folder, "add", ".")
    git(folder, "commit", "-q", "-m", "dassl")
    return folder, git(folder, "rev-parse", "HEAD")


def snapshot(folder):
    """Every file and folder under ``folder`` with its bytes' hash: equal snapshots, an untouched tree."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            found[os.path.relpath(os.path.join(root, name), folder)] = "dir"
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                found[os.path.relpath(os.path.join(root, name), folder)] = hashlib.sha256(f.read()).hexdigest()
    return found


@pytest.fixture()
def install(tmp_path):
    """``install(**env)``: runs the script with a fake PYTHON and its own TMPDIR; returns
    (CompletedProcess, the recorded PYTHON calls, what is left in TMPDIR)."""
    calls, tmp = tmp_path / "calls.jsonl", tmp_path / "tmpdir"
    tmp.mkdir()
    python = write_fake_python(tmp_path, FAKE_PYTHON)

    def run(**env):
        calls.write_text("")
        env = {"PYTHON": str(python), "FAKE_CALLS": str(calls), "TMPDIR": str(tmp), **env}
        proc = run_cli(["bash", "scripts/install_dassl.sh"], env_extra=env, timeout=60)
        return proc, [json.loads(line) for line in calls.read_text().splitlines()], os.listdir(tmp)

    return run


def one_error(proc):
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return errors[0]


def test_a_plain_source_tree_is_installed_from_a_copy_and_left_byte_for_byte_unchanged(install, tmp_path):
    tree = write_dassl_tree(tmp_path / "Dassl.pytorch")
    (tree / "build" / "lib").mkdir(parents=True)
    (tree / "build" / "lib" / "stale.py").write_text("# an earlier in-tree build\n")
    before = snapshot(tree)
    proc, calls, left = install(DASSL_SRC=str(tree))
    assert proc.returncode == 0, proc.stderr
    built = calls[1][-1]
    assert calls[1][:3] == ["-m", "pip", "install"] and "--no-build-isolation" in calls[1]
    assert not built.startswith(str(tree))  # pip got a copy, not DASSL_SRC
    assert snapshot(tree) == before  # no build/ or dassl.egg-info/ added, nothing changed
    assert left == []  # the copy (with pip's build/) went with the temporary folder
    assert "installed dassl 0.6.3" in proc.stdout


def test_a_plain_source_tree_is_not_checked_but_its_version_is_said_in_one_line(install, tmp_path):
    tree = write_dassl_tree(tmp_path / "Dassl.pytorch", version="0.5.9")
    proc, _, _ = install(DASSL_SRC=str(tree))
    assert proc.returncode == 0, proc.stderr
    said = [line for line in proc.stdout.splitlines() if "not a git checkout" in line]
    assert len(said) == 1 and "dassl 0.5.9" in said[0] and "c61a1b5 is 0.6.3" in said[0] and str(tree) in said[0]


def test_a_tree_inside_another_repository_is_a_plain_tree(install, tmp_path):
    # the enclosing repository's commit says nothing about the Dassl files in it
    outer, _ = git_checkout(tmp_path / "project")
    tree = write_dassl_tree(outer / "vendor" / "Dassl.pytorch")
    proc, calls, _ = install(DASSL_SRC=str(tree))
    assert proc.returncode == 0, proc.stderr
    assert "not a git checkout" in proc.stdout and len(calls) == 3


def test_a_git_checkout_at_another_commit_is_refused_in_one_line(install, tmp_path):
    tree, commit = git_checkout(tmp_path / "Dassl.pytorch")
    before = snapshot(tree)
    proc, calls, left = install(DASSL_SRC=str(tree))
    error = one_error(proc)
    assert f"DASSL_SRC={tree}" in error and commit[:7] in error and "c61a1b5" in error
    assert calls == [] and left == [] and snapshot(tree) == before


def test_a_git_checkout_at_the_commit_dassl_commit_names_is_installed(install, tmp_path):
    tree, commit = git_checkout(tmp_path / "Dassl.pytorch")
    before = snapshot(tree)
    for pin in (commit[:7], commit, "HEAD"):
        proc, calls, left = install(DASSL_SRC=str(tree), DASSL_COMMIT=pin)
        assert proc.returncode == 0, (pin, proc.stderr)
        assert len(calls) == 3 and "not a git checkout" not in proc.stdout
        assert left == [] and snapshot(tree) == before


def test_a_failed_clone_leaves_no_temporary_folder(install, tmp_path):
    proc, calls, left = install(DASSL_SRC="", DASSL_REPO=str(tmp_path / "no_repository_here"))
    assert "could not clone" in one_error(proc)
    assert calls == [] and left == []


def test_a_clone_is_checked_out_at_dassl_commit_and_removed_after_install(install, tmp_path):
    repo, commit = git_checkout(tmp_path / "upstream")
    (repo / "later.txt").write_text("a later commit\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "later")
    proc, calls, left = install(DASSL_SRC="", DASSL_REPO=str(repo), DASSL_COMMIT=commit[:7])
    assert proc.returncode == 0, proc.stderr
    assert calls[1][-1].startswith(str(tmp_path / "tmpdir")) and left == []
    proc, calls, left = install(DASSL_SRC="", DASSL_REPO=str(repo), DASSL_COMMIT="0000000")
    error = one_error(proc)
    assert "0000000" in error and "DASSL_COMMIT" in error
    assert calls == [] and left == []
