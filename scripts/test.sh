#!/bin/sh
# The test suite from a fresh clone: sets up (see setup.sh), then runs pytest in the
# clone; extra arguments go to pytest (-x, tests/test_cli.py, -m "not slow").
set -eu
. "$(dirname "$0")/setup.sh"
cd "$ROOT"
exec "$PYTHON" -m pytest "$@"
