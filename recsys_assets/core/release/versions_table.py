"""The kept versions of both published models as rows: what the ``model_versions`` asset shows.

Reads :class:`ModelHistory`'s records defensively (a field a record lacks is shown empty), so a
record written by an older or newer publish step still lists.
"""

from recsys_assets.core.artifact_store import ArtifactStore
from recsys_assets.core.release.candidate import MODEL_FILES
from recsys_assets.core.release.history import ModelHistory
from recsys_assets.core.release.registry import crossing, live_record

MODELS = MODEL_FILES
COLUMNS = (
    "model",
    "version",
    "published",
    "metric",
    "value",
    "users",
    "ratings",
    "published_at",
    "export",
    "run",
    "lineage",
)


def metric_of(metrics) -> tuple[str, float | None]:
    """The record's headline figure; a missing, null or non-numeric one is shown empty."""
    metrics = metrics if isinstance(metrics, dict) else {}
    for key in ("val_rmse", "val_ndcg_at_10"):
        value = metrics.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return key, round(float(value), 4)
    return "", None


def _count(data, key: str) -> int:
    value = data.get(key) if isinstance(data, dict) else None
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def damaged_files(history: ModelHistory, versions) -> list[str]:
    """One line per kept version whose file does not match the sha256 its record names (truncated, replaced)."""
    from recsys_assets.core.release.history import file_digest

    problems = []
    for version in versions:
        where = f"{history.folder}/{version.name}.pth"
        with history.store.read(where) as local:
            if file_digest(local) != version.record.get("sha256"):
                problems.append(
                    f"{history.store.url(where)} does not match its recorded sha256 (truncated or replaced)"
                )
    return problems


def lineage_mark(version, live_now: dict | None) -> str:
    """ "demo sample", "other lineage" or "" for a kept version against the live one's record."""
    why = crossing(version, live_now)
    if version.record.get("sample_export"):
        return "demo sample"
    return "other lineage" if why else ""


def version_rows(store: ArtifactStore) -> list[dict]:
    """One row per kept version of each model, newest first; ``published`` marks the live file's version."""
    rows = []
    for kind, name in MODELS.items():
        history = ModelHistory(store, name)
        versions = history.versions()
        current = history.current(versions)
        live_now = live_record(store, name)
        for version in versions:
            record = version.record
            metric, value = metric_of(record.get("metrics"))
            data = record.get("data")
            rows.append(
                {
                    "model": kind,
                    "version": version.name,
                    "published": version.name == current,
                    "published_at": str(record.get("published_at", "")),
                    "metric": metric,
                    "value": value,
                    "users": _count(data, "n_users"),
                    "ratings": _count(data, "n_ratings"),
                    "export": str(record.get("export_fingerprint") or "")[:12],
                    "run": str(record.get("run_id") or "")[:8],
                    "lineage": lineage_mark(version, live_now),
                }
            )
    return rows
