#!/usr/bin/env bash
# One command from a fresh clone: set up .venv with the dev extras and run the whole test suite
# (end-to-end tests included). Extra arguments go to pytest, e.g. scripts/test.sh -m "not e2e".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
export MPLBACKEND=Agg
exec .venv/bin/python -m pytest "$@"
