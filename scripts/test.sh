#!/usr/bin/env bash
# One command from a fresh clone: set up .venv with the dev extras, the browser the UI test drives,
# and run the whole test suite (end-to-end tests included). Extra arguments go to pytest,
# e.g. scripts/test.sh -m "not e2e" for the quick tests only.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing Debian's chromium for the browser test"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
      || echo "warning: could not install chromium; the browser test will be skipped" >&2
  else
    echo "note: chromium is not installed (apt-get install chromium); the browser test will be skipped" >&2
  fi
fi
export MPLBACKEND=Agg
exec .venv/bin/python -m pytest "$@"
