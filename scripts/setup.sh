#!/bin/sh
# Sourced by quickstart.sh and test.sh (or run alone): makes sure an environment holds
# torch and this project with its test extra, and sets PYTHON to that environment's python.
#   - The active virtual environment ($VIRTUAL_ENV) is used; without one, .venv in the
#     clone is created on the first call and used from then on.
#   - torch: the CPU wheel pinned here, unless a torch is installed already (so a CUDA
#     build installed first is kept).
#   - The project, editable, with its test extra; again only when setup.cfg or
#     pyproject.toml changed (their checksum is stamped inside the environment).
# A second call finds everything in place and installs nothing.
set -eu
TORCH_REQUIREMENT="torch==2.13.0"
ROOT=$(cd "$(dirname "$0")/.." && pwd)

if [ -n "${VIRTUAL_ENV:-}" ]; then
    ENV_DIR=$VIRTUAL_ENV
else
    ENV_DIR=$ROOT/.venv
    if [ ! -x "$ENV_DIR/bin/python" ]; then
        echo "setup: creating $ENV_DIR"
        python3 -m venv "$ENV_DIR" || {
            rm -rf "$ENV_DIR"
            echo "setup: python3 -m venv failed (Debian and Ubuntu: apt install python3-venv)" >&2
            exit 1
        }
    fi
fi
PYTHON=$ENV_DIR/bin/python
"$PYTHON" -c "import sys; sys.exit(sys.version_info < (3, 10))" || {
    echo "setup: $PYTHON is older than Python 3.10" >&2
    exit 1
}

if ! "$PYTHON" -c "import importlib.util as u, sys; sys.exit(not u.find_spec('torch'))"; then
    echo "setup: installing $TORCH_REQUIREMENT (the CPU wheel)"
    "$PYTHON" -m pip install -q "$TORCH_REQUIREMENT"
fi

STAMP=$ENV_DIR/.bert-run-classifier-installed
KEY="$(cat "$ROOT/setup.cfg" "$ROOT/pyproject.toml" | cksum) $ROOT"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$KEY" ]; then
    echo "setup: installing the project and its test extra (pip install -e '.[test]')"
    "$PYTHON" -m pip install -q -e "$ROOT[test]"
    echo "$KEY" >"$STAMP"
fi
