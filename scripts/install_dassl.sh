#!/usr/bin/env bash
# Install upstream Dassl.pytorch at the pinned commit into the current Python.
#
#   bash scripts/install_dassl.sh                 # clone from GitHub (needs internet)
#   DASSL_SRC=/path/to/Dassl.pytorch bash scripts/install_dassl.sh   # offline, from a source tree
#
# Dassl's setup.py imports numpy at build time and pins 2019 lint tools, so it
# is installed with --no-deps --no-build-isolation; its real run-time needs
# are listed in this project's setup.py (pip install -e . installs them).
# pip builds from a copy in a temporary folder, so DASSL_SRC is left as it was
# (no build/ or dassl.egg-info/), and the folder goes on every exit.
set -euo pipefail

DASSL_COMMIT="${DASSL_COMMIT:-c61a1b5}"
DASSL_REPO="${DASSL_REPO:-https://github.com/KaiyangZhou/Dassl.pytorch.git}"
PYTHON="${PYTHON:-python}"
PINNED_VERSION=0.6.3  # dassl/__init__.py's __version__ at c61a1b5

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT   # an interrupted install still runs the EXIT trap
trap 'exit 143' TERM
src="$work/Dassl.pytorch"

if [ -n "${DASSL_SRC:-}" ]; then
    if [ ! -f "$DASSL_SRC/setup.py" ] || [ ! -d "$DASSL_SRC/dassl" ]; then
        echo "error: DASSL_SRC=$DASSL_SRC is not a Dassl.pytorch source tree (no setup.py and dassl/)" >&2
        exit 2
    fi
    # Only a checkout whose top is DASSL_SRC itself: a plain tree copied into some other
    # repository must not be judged by that repository's commit.
    top="$(git -C "$DASSL_SRC" rev-parse --show-toplevel 2>/dev/null || true)"
    if [ -n "$top" ] && [ "$(cd "$top" && pwd -P)" = "$(cd "$DASSL_SRC" && pwd -P)" ]; then
        found="$(git -C "$DASSL_SRC" rev-parse HEAD)"
        wanted="$(git -C "$DASSL_SRC" rev-parse --verify --quiet "$DASSL_COMMIT^{commit}" || true)"
        # a shallow copy may not know the pinned commit: then compare the abbreviation
        if [ "$found" != "$wanted" ] && [[ "$found" != "$DASSL_COMMIT"* ]]; then
            echo "error: DASSL_SRC=$DASSL_SRC is at commit ${found:0:7}, not the pinned $DASSL_COMMIT; run git -C $DASSL_SRC checkout $DASSL_COMMIT (or set DASSL_COMMIT=${found:0:7} to install this one)" >&2
            exit 2
        fi
    else
        version="$(sed -n "s/^__version__ = [\"']\([^\"']*\)[\"'].*/\1/p" "$DASSL_SRC/dassl/__init__.py")"
        echo "DASSL_SRC=$DASSL_SRC is not a git checkout, so its commit is not checked: it holds dassl ${version:-of unknown version} (the pinned c61a1b5 is $PINNED_VERSION)"
    fi
    cp -R "$DASSL_SRC/." "$src"
    # an earlier in-tree build's leftovers would otherwise be packed into the new install
    rm -rf "$src/.git" "$src/build" "$src"/*.egg-info
else
    if ! git clone --quiet "$DASSL_REPO" "$src"; then
        echo "error: could not clone $DASSL_REPO; without internet, point DASSL_SRC at a Dassl.pytorch source tree (docs/install.md)" >&2
        exit 2
    fi
    if ! git -C "$src" checkout --quiet "$DASSL_COMMIT" 2>/dev/null; then
        echo "error: $DASSL_REPO has no commit $DASSL_COMMIT (DASSL_COMMIT); set DASSL_COMMIT to one it has" >&2
        exit 2
    fi
fi

"$PYTHON" -m pip install --quiet numpy
"$PYTHON" -m pip install --quiet --no-deps --no-build-isolation "$src"
"$PYTHON" -c "import dassl, sys; print('installed dassl', dassl.__version__, 'into', sys.executable)"
