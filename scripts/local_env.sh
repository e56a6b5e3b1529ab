# Sourced from the repo root by run_pipeline.sh and ui.sh: the local Dagster instance and folders.
# * DAGSTER_HOME (default .dagster_home/, sqlite) gets deploy/local/dagster.yaml when it has no
#   dagster.yaml (or only the telemetry line that earlier versions wrote): telemetry off, pool limits.
# * The drop folder for new exports (data/exports/, or RECSYS_DROP_DIR) exists.
# * .venv is the active environment, so `dg` finds the project's own.
# * The settings file (RECSYS_SETTINGS_FILE, default recsys.env at the repo root) fills every variable the
#   environment does not set; recsys_assets/settings.py reads it (and so do dg, its runs and recsys).
export RECSYS_SETTINGS_FILE="${RECSYS_SETTINGS_FILE:-$PWD/recsys.env}"
from_file="$(.venv/bin/python -m recsys_assets.settings --shell)" || return 1  # a malformed file stops the script
eval "$from_file"
export DAGSTER_HOME="${DAGSTER_HOME:-$PWD/.dagster_home}"
mkdir -p "$DAGSTER_HOME"
if [ ! -f "$DAGSTER_HOME/dagster.yaml" ] \
  || [ "$(cat "$DAGSTER_HOME/dagster.yaml")" = "$(printf 'telemetry:\n  enabled: false')" ]; then
  cp deploy/local/dagster.yaml "$DAGSTER_HOME/dagster.yaml"
fi
drop_dir="${RECSYS_DROP_DIR:-${RECSYS_DATA_DIR:-data}/exports}"
case "$drop_dir" in *://*) ;; *) mkdir -p "$drop_dir" ;; esac
export VIRTUAL_ENV="$PWD/.venv" PATH="$PWD/.venv/bin:$PATH"
