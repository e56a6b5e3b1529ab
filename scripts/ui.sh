#!/usr/bin/env bash
# Open the Dagster UI (webserver + daemon) on http://127.0.0.1:3000 with the project's DAGSTER_HOME.
# Expose it deliberately with HOST=0.0.0.0 scripts/ui.sh (anyone who can reach the port can launch runs).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/local_env.sh  # DAGSTER_HOME, its dagster.yaml, data/exports/, the active .venv
[ -f "${RECSYS_EXPORT_PATH:-data/ratings_export.csv}" ] || .venv/bin/recsys sample
exec dg dev -h "${HOST:-127.0.0.1}" -p "${PORT:-3000}"
