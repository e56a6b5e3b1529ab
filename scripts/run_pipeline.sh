#!/usr/bin/env bash
# One command from a fresh clone: set up .venv, make sure an export exists, and materialize every asset.
# Runs and lineage persist in .dagster_home/ (sqlite). Extra arguments go to `dg launch`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/local_env.sh  # DAGSTER_HOME, its dagster.yaml, data/exports/, the active .venv
export_path="${RECSYS_EXPORT_PATH:-data/ratings_export.csv}"
if [ ! -f "$export_path" ]; then
  if [ -n "${RECSYS_EXPORT_PATH:-}" ]; then
    echo "error: RECSYS_EXPORT_PATH=$RECSYS_EXPORT_PATH does not exist" >&2; exit 2
  fi
  .venv/bin/recsys sample --path "$export_path"
fi
echo "==> materializing all assets: dg launch --assets '*' (DAGSTER_HOME=$DAGSTER_HOME)"
dg launch --assets '*' "$@"
echo "==> done: models at ${RECSYS_DATA_DIR:-data}/recommendation_model.pth and ranking_model.pth, plot at ${RECSYS_DATA_DIR:-data}/training_loss.png"
.venv/bin/recsys metrics
