#!/usr/bin/env bash
# One command from a fresh clone: set up .venv, make sure an export exists, and materialize every asset.
# Runs and lineage persist in .dagster_home/ (sqlite). Extra arguments go to `dg launch`.
#   scripts/run_pipeline.sh [--movies path/to/movies.csv] [dg launch arguments ...]
# --movies (or RECSYS_MOVIES_PATH) names the MovieLens movies.csv beside the export, for titles; like
# RECSYS_EXPORT_PATH it is kept in the settings file (recsys.env) for the UI, recsys and later runs.
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --movies) [ $# -ge 2 ] || { echo "error: --movies needs a path to a movies.csv" >&2; exit 2; }
      RECSYS_MOVIES_PATH="$2"; shift 2 ;;
    --movies=*) RECSYS_MOVIES_PATH="${1#--movies=}"; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
scripts/setup.sh
keep() {  # NAME: a path given for this run, checked and kept in the settings file for the UI and later runs
  local name="$1" value="${!1}"
  if [ ! -f "$value" ]; then
    echo "error: $name=$value does not exist" >&2; exit 2
  fi
  RECSYS_SETTINGS_FILE="${RECSYS_SETTINGS_FILE:-$PWD/recsys.env}" \
    .venv/bin/python -m recsys_assets.settings --set "$name=$(realpath "$value")"
}
if [ -n "${RECSYS_EXPORT_PATH:-}" ]; then keep RECSYS_EXPORT_PATH; fi
if [ -n "${RECSYS_MOVIES_PATH:-}" ]; then keep RECSYS_MOVIES_PATH; fi
. scripts/local_env.sh  # the settings file, DAGSTER_HOME, its dagster.yaml, data/exports/, the active .venv
for name in RECSYS_EXPORT_PATH RECSYS_MOVIES_PATH; do
  if [ -n "${!name:-}" ] && [ ! -f "${!name}" ]; then
    echo "error: $name=${!name} (from $RECSYS_SETTINGS_FILE) does not exist" >&2; exit 2
  fi
done
.venv/bin/recsys sample  # writes a synthetic export at the default path only when none is there
echo "==> materializing all assets: dg launch --assets '*' (DAGSTER_HOME=$DAGSTER_HOME)"
case "${RECSYS_VERBOSE:-}" in
  1 | true | yes | on) dg launch --assets '*' ${args[@]+"${args[@]}"} ;;  # Dagster's whole event log
  *)  # one line per step, and the reason of a failure; the whole log goes to last_run.log
    status=0
    dg launch --assets '*' ${args[@]+"${args[@]}"} 2>&1 \
      | .venv/bin/python -m recsys_assets.run_summary --log "$DAGSTER_HOME/last_run.log" \
        --data-dir "${RECSYS_DATA_DIR:-data}" \
      || status=$?
    [ "$status" = 0 ] || exit "$status" ;;
esac
echo "==> done (recsys models lists the published files)"
.venv/bin/recsys metrics
if [ -z "${RECSYS_MOVIES_PATH:-}" ]; then
  echo "    (no titles: run again with --movies path/to/movies.csv, the MovieLens file beside the export)"
fi
cat <<NEXT
==> next steps (copy and paste; recsys reads recsys.env and data/ from this folder):
    cd "$PWD" && source .venv/bin/activate
    recsys recommend --user 1
    recsys models
  or without activating:  cd "$PWD" && .venv/bin/recsys recommend --user 1
NEXT
