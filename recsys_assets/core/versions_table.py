"""The kept versions of both published models as rows: what the ``model_versions`` asset shows.

Reads :class:`ModelHistory`'s records defensively (a field a record lacks is shown empty), so a
record written by an older or newer publish step still lists.
"""

from recsys_assets.core.artifact_store import ArtifactStore
from recsys_assets.core.model_history import ModelHistory

MODELS = {"rating": "recommendation_model.pth", "ranking": "ranking_model.pth"}
COLUMNS = ("model", "version", "published", "published_at", "metric", "value", "users", "ratings", "export", "run")


def _metric(metrics: dict) -> tuple[str, float | None]:
    for key in ("val_rmse", "val_ndcg_at_10"):
        if isinstance(metrics.get(key), (int, float)):
            return key, round(float(metrics[key]), 4)
    return "", None


def version_rows(store: ArtifactStore) -> list[dict]:
    """One row per kept version of each model, newest first; ``published`` marks the live file's version."""
    rows = []
    for kind, name in MODELS.items():
        history = ModelHistory(store, name)
        versions = history.versions()
        current = history.current(versions)
        for version in versions:
            record = version.record
            metric, value = _metric(record.get("metrics") or {})
            data = record.get("data") or {}
            rows.append(
                {
                    "model": kind,
                    "version": version.name,
                    "published": version.name == current,
                    "published_at": str(record.get("published_at", "")),
                    "metric": metric,
                    "value": value,
                    "users": int(data.get("n_users") or 0),
                    "ratings": int(data.get("n_ratings") or 0),
                    "export": str(record.get("export_fingerprint") or "")[:12],
                    "run": str(record.get("run_id") or "")[:8],
                }
            )
    return rows
