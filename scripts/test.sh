#!/usr/bin/env bash
# One command from a fresh clone: set up .venv with the dev extras, the browser the UI test drives and
# the PostgreSQL server the instance tests start and the Redis server the Celery test starts, then run the whole test suite (end-to-end tests
# included), after the linter, the formatter check and the type checker. Extra arguments go to pytest,
# e.g. scripts/test.sh -m "not e2e" for the quick tests only. In one pytest session (two xdist workers) the fast tier (unit
# and defs tests) runs first and the end-to-end tier (marked e2e) after it; when a fast test fails, the
# end-to-end tier is skipped (recsys_assets_tests/conftest.py). Tests that need MovieLens ml-latest-small
# find it through RECSYS_MOVIELENS_DIR (default ../shared/datasets/ml-latest-small) and skip without it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
# apt_install PACKAGE WHAT: install a Debian package the end-to-end tests need, when running as root
apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing Debian's $1 for $2"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1") >/dev/null 2>&1 \
      || echo "warning: could not install $1; $2 will be skipped" >&2
  else
    echo "note: $1 is not installed (apt-get install $1); $2 will be skipped" >&2
  fi
}
command -v chromium >/dev/null 2>&1 || apt_install chromium "the browser test"
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  apt_install postgresql "the PostgreSQL instance test"
fi
command -v redis-server >/dev/null 2>&1 || apt_install redis-server "the Celery test (its broker)"
echo "==> ruff check, ruff format --check, basedpyright (basic mode)"
.venv/bin/ruff check --quiet .
.venv/bin/ruff format --check --quiet .
.venv/bin/basedpyright --level error | tail -n 1
export MPLBACKEND=Agg
# two workers (pytest-xdist): much of the end-to-end tier waits on the processes it starts, and the other
# worker uses that time. Each test file runs whole on one worker (--dist loadfile), so a module-wide server
# starts once. RECSYS_TEST_WORKERS=0 runs in one process (an -n given after this wins too). The 15 slowest
# tests are listed at the end, to see where the suite's time goes.
exec .venv/bin/python -m pytest -n "${RECSYS_TEST_WORKERS:-2}" --dist loadfile --durations=15 "$@"
