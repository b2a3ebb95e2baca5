""".ci/run with a fake python, apt-get and id: what it installs, and that CI=true never goes green
with the Dassl or FashionMNIST tests skipped for want of something it could have installed."""

import json
import os
import re
import stat

import pytest

from conftest import REPO, run_cli, write_fake_python

# Stands in for PYTHON: `import dassl` works only with FAKE_DASSL=1; pip and pytest are recorded.
FAKE_PYTHON = r'''
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_CALLS"], "a") as f:
    f.write(json.dumps(["python", *args]) + "\n")
if args[:1] == ["-c"]:
    if "import dassl" in args[1] and os.environ.get("FAKE_DASSL") != "1":
        sys.exit("ModuleNotFoundError: No module named 'dassl'")
    print("dassl 0.6.3 | torch fake")
elif args[:2] == ["-m", "pytest"]:
    print("fake pytest ran")
'''


def write_tool(folder, name, body):
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture()
def ci(tmp_path):
    """Runs .ci/run; returns (CompletedProcess, calls) with the calls of python and apt-get."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.txt"
    calls.touch()
    idx_dir = tmp_path / "fashion-mnist"
    write_tool(bin_dir, "apt-get", f'echo "[\\"apt-get\\", \\"$*\\"]" >> {calls}\n'
                                   f'[ -n "$FAKE_APT_FAIL" ] && exit 100\n'
                                   f'case "$*" in *install*) mkdir -p {idx_dir} ;; esac\n')
    write_tool(bin_dir, "id", 'echo "${FAKE_UID:-0}"\n')
    python = write_fake_python(tmp_path, FAKE_PYTHON)

    def run(*, strict, dassl, fashion_present=True, **env):
        if fashion_present:
            idx_dir.mkdir(exist_ok=True)
        elif idx_dir.exists():
            idx_dir.rmdir()
        env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHON": str(python), "FAKE_CALLS": str(calls),
               "CI": "true" if strict else "", "FAKE_DASSL": "1" if dassl else "0",
               "DASSL_SRC": str(tmp_path / "no_dassl_here"),  # install_dassl.sh fails at once, offline
               "FASHION_MNIST_IDX_DIR": str(idx_dir), **env}
        proc = run_cli(["bash", ".ci/run"], env_extra=env, timeout=60)
        recorded = [json.loads(line) for line in calls.read_text().splitlines()]
        calls.write_text("")
        return proc, recorded

    return run


def ran_pytest(calls):
    return ["python", "-m", "pytest", "-q"] in calls


def test_ci_fails_in_one_line_when_dassl_cannot_be_installed(ci):
    proc, calls = ci(strict=True, dassl=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: Dassl is not installed") and "DASSL_SRC=/path/to/Dassl.pytorch" in last
    assert "internet" in last
    assert not ran_pytest(calls)


def test_without_ci_a_missing_dassl_is_a_warning_and_the_tests_run(ci):
    proc, calls = ci(strict=False, dassl=False)
    assert proc.returncode == 0, proc.stderr
    assert "warning: Dassl is not installed" in proc.stderr and "DASSL_SRC" in proc.stderr
    assert ran_pytest(calls)


def test_an_installed_dassl_is_used_as_it_is(ci):
    proc, calls = ci(strict=True, dassl=True)
    assert proc.returncode == 0, proc.stderr
    assert "dassl 0.6.3" in proc.stdout and "warning" not in proc.stderr
    assert not any("--no-build-isolation" in call for call in calls)  # scripts/install_dassl.sh did not run
    assert ran_pytest(calls)


def test_fashion_mnist_is_installed_when_missing_and_left_alone_when_present(ci):
    proc, calls = ci(strict=True, dassl=True)
    assert not any(call[0] == "apt-get" for call in calls)
    assert "fashion" not in (proc.stdout + proc.stderr).lower()  # quiet when present
    proc, calls = ci(strict=True, dassl=True, fashion_present=False)
    assert proc.returncode == 0, proc.stderr
    installs = [call for call in calls if call[0] == "apt-get" and "install" in call[1]]
    assert installs and "dataset-fashion-mnist" in installs[0][1]
    assert calls.index(installs[0]) < calls.index(["python", "-m", "pytest", "-q"])


def test_fashion_mnist_that_cannot_be_installed(ci):
    proc, calls = ci(strict=True, dassl=True, fashion_present=False, FAKE_APT_FAIL="1")
    assert proc.returncode == 2 and not ran_pytest(calls)
    assert proc.stderr.strip().splitlines()[-1].startswith("error: apt-get could not install dataset-fashion-mnist")
    proc, calls = ci(strict=True, dassl=True, fashion_present=False, FAKE_UID="1000")  # not root: nothing to try
    assert proc.returncode == 0 and ran_pytest(calls)
    assert not any(call[0] == "apt-get" for call in calls)
    assert "warning: dataset-fashion-mnist is not installed" in proc.stderr


def test_ci_run_looks_where_the_fashion_mnist_loader_looks():
    from benchmarks.fashion_mnist import SYSTEM_IDX_DIR

    with open(os.path.join(REPO, ".ci", "run")) as f:
        default = re.search(r'FASHION_MNIST_IDX_DIR="\$\{FASHION_MNIST_IDX_DIR:-([^}]*)\}"', f.read()).group(1)
    assert default == SYSTEM_IDX_DIR
