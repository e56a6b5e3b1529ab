#!/usr/bin/env bash
# One command from a fresh clone: set up .venv, make sure an export exists, and materialize every asset.
# Runs and lineage persist in .dagster_home/ (sqlite). Extra arguments go to `dg launch`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ -n "${RECSYS_EXPORT_PATH:-}" ]; then  # given for this run: kept in the settings file for the UI and later runs
  if [ ! -f "$RECSYS_EXPORT_PATH" ]; then
    echo "error: RECSYS_EXPORT_PATH=$RECSYS_EXPORT_PATH does not exist" >&2; exit 2
  fi
  RECSYS_SETTINGS_FILE="${RECSYS_SETTINGS_FILE:-$PWD/recsys.env}" \
    .venv/bin/python -m recsys_assets.settings --set "RECSYS_EXPORT_PATH=$(realpath "$RECSYS_EXPORT_PATH")"
fi
. scripts/local_env.sh  # the settings file, DAGSTER_HOME, its dagster.yaml, data/exports/, the active .venv
if [ -n "${RECSYS_EXPORT_PATH:-}" ] && [ ! -f "$RECSYS_EXPORT_PATH" ]; then
  echo "error: RECSYS_EXPORT_PATH=$RECSYS_EXPORT_PATH (from $RECSYS_SETTINGS_FILE) does not exist" >&2; exit 2
fi
.venv/bin/recsys sample  # writes a synthetic export at the default path only when none is there
echo "==> materializing all assets: dg launch --assets '*' (DAGSTER_HOME=$DAGSTER_HOME)"
case "${RECSYS_VERBOSE:-}" in
  1 | true | yes | on) dg launch --assets '*' "$@" ;;  # Dagster's whole event log
  *)  # one line per step, and the reason of a failure; the whole log goes to last_run.log
    status=0
    dg launch --assets '*' "$@" 2>&1 | .venv/bin/python -m recsys_assets.run_summary --log "$DAGSTER_HOME/last_run.log" \
      || status=$?
    [ "$status" = 0 ] || exit "$status" ;;
esac
echo "==> done (recsys models lists the published files; the loss plot is training_loss.png beside them)"
.venv/bin/recsys metrics
