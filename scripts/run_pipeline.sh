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
.venv/bin/python - <<'PY'
import os
from recsys_assets import Recommender
rec = Recommender.load(os.path.join(os.environ.get("RECSYS_DATA_DIR") or "data", "recommendation_model.pth"))
m = rec.info["metrics"]
print(f"validation RMSE {m['val_rmse']:.4f} (global mean {m['global_mean_rmse']:.4f}, bias only {m['bias_only_rmse']:.4f})")
if rec.ranker is not None:
    r = rec.ranker.metrics
    print(f"ranking NDCG@10 {r['val_ndcg_at_10']:.4f} (most popular {r['popular_ndcg_at_10']:.4f}, rating model {m['ndcg_at_10']:.4f})")
PY
