#!/usr/bin/env bash
# Open the Dagster UI (webserver + daemon) on http://127.0.0.1:3000 with the project's DAGSTER_HOME.
# Expose it deliberately with HOST=0.0.0.0 scripts/ui.sh (anyone who can reach the port can launch runs).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/local_env.sh  # the settings file, DAGSTER_HOME, its dagster.yaml, data/exports/, the active .venv
.venv/bin/recsys sample  # writes a synthetic export at the default path only when none is there
cat <<MSG
==> the sensor new_export_sensor is ON: every ${RECSYS_SENSOR_INTERVAL:-30} s it looks at the current export
    (the newest complete file in ${RECSYS_DROP_DIR:-${RECSYS_DATA_DIR:-data}/exports}/, else the export path) and
    starts one retraining run per new or changed file that no kept model version was trained on.
    Settings (the export path among them) come from the environment, then ${RECSYS_SETTINGS_FILE}.
    Turn it off under Automation in the UI. Serving http://${HOST:-127.0.0.1}:${PORT:-3000}
MSG
exec dg dev -h "${HOST:-127.0.0.1}" -p "${PORT:-3000}"
