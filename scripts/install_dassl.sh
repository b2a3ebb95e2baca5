#!/usr/bin/env bash
# Install upstream Dassl.pytorch at the pinned commit into the current Python.
#
#   bash scripts/install_dassl.sh                 # clone from GitHub (needs internet)
#   DASSL_SRC=/path/to/Dassl.pytorch bash scripts/install_dassl.sh   # offline, from a source tree
#
# Dassl's setup.py imports numpy at build time and pins 2019 lint tools, so it
# is installed with --no-deps --no-build-isolation; its real run-time needs
# are listed in this project's setup.py (pip install -e . installs them).
set -euo pipefail

DASSL_COMMIT="${DASSL_COMMIT:-c61a1b5}"
DASSL_REPO="${DASSL_REPO:-https://github.com/KaiyangZhou/Dassl.pytorch.git}"
PYTHON="${PYTHON:-python}"

if [ -n "${DASSL_SRC:-}" ]; then
    if [ ! -f "$DASSL_SRC/setup.py" ] || [ ! -d "$DASSL_SRC/dassl" ]; then
        echo "error: DASSL_SRC=$DASSL_SRC is not a Dassl.pytorch source tree (no setup.py and dassl/)" >&2
        exit 2
    fi
    src="$DASSL_SRC"
else
    src="$(mktemp -d)/Dassl.pytorch"
    if ! git clone --quiet "$DASSL_REPO" "$src"; then
        echo "error: could not clone $DASSL_REPO; without internet, point DASSL_SRC at a Dassl.pytorch source tree (docs/install.md)" >&2
        exit 2
    fi
    git -C "$src" checkout --quiet "$DASSL_COMMIT"
fi

"$PYTHON" -m pip install --quiet numpy
"$PYTHON" -m pip install --quiet --no-deps --no-build-isolation "$src"
"$PYTHON" -c "import dassl, sys; print('installed dassl', dassl.__version__, 'into', sys.executable)"
