"""Retraining that runs itself: a sensor for new exports and a nightly schedule.

* ``new_export_sensor`` (on by default) looks at the current export every
  ``RECSYS_SENSOR_INTERVAL`` seconds (default 30).  A new or changed file is
  first seen as *pending*; when a later look finds it unchanged (size and
  modification time), it is complete, and exactly one run of the whole asset
  chain is requested for its fingerprint (the run key), unless the export was
  already ingested: the latest ``raw_ratings`` materialization, or any kept model
  version (``data/models``) trained on the same bytes, so a restart with a fresh
  instance does not publish a byte-identical version again.  Once models of a
  real export are kept, the synthetic demo export (``recsys sample``) is never
  ingested by the sensor.
* ``retrain_schedule`` (off by default) runs on ``RECSYS_RETRAIN_CRON``
  (default ``0 3 * * *``) in ``RECSYS_TIMEZONE`` (default UTC): it retrains when
  the export changed since the last ingest and otherwise skips, unless
  ``RECSYS_RETRAIN_FORCE=1``.

A symbolic link in the drop folder that leads outside it is not taken as an
export; the sensor logs it and names it in its skip reason.
"""

import json

import dagster as dg

from recsys_assets import settings
from recsys_assets.core.exports import ExportLook, content_key, is_sample_export, refused_exports, sample_fingerprints
from recsys_assets.defs.resources import RecsysStorage

retrain_job = dg.define_asset_job(
    "retrain_model",
    selection=dg.AssetSelection.all(),
    description="Ingest the current export and retrain the model (every asset, with their checks).",
)


def last_ingested_fingerprint(instance: dg.DagsterInstance) -> str | None:
    """The export fingerprint recorded by the latest raw_ratings materialization."""
    event = instance.get_latest_materialization_event(dg.AssetKey("raw_ratings"))
    if event is None or event.asset_materialization is None:
        return None
    value = event.asset_materialization.metadata.get("export_fingerprint")
    return value.value if value is not None else None


def kept_exports(storage: RecsysStorage) -> dict[str, str]:
    """The exports behind the kept model versions (``core/release/history.py``): content key -> which version."""
    from recsys_assets.core.release.candidate import MODEL_FILES
    from recsys_assets.core.release.history import ModelHistory

    kept = {}
    for kind, name in sorted(MODEL_FILES.items()):
        try:
            versions = ModelHistory(storage.store, name).versions()
        except (OSError, ValueError):  # an unreadable history: the latest ingest still counts
            continue
        for version in versions:
            fingerprint = version.record.get("export_fingerprint")
            if isinstance(fingerprint, str) and fingerprint:
                kept[content_key(fingerprint)] = f"the kept {kind} model {version.name}"
    return kept


def _not_new(storage: RecsysStorage, instance: dg.DagsterInstance, path: str, fingerprint: str) -> str | None:
    """Why the sensor leaves this export alone (already ingested, or the demo export), or None."""
    if fingerprint == last_ingested_fingerprint(instance):
        return f"{path} was already ingested (fingerprint {fingerprint[:12]})"
    kept = kept_exports(storage)
    if content_key(fingerprint) in kept:
        return f"{path} was already ingested: {kept[content_key(fingerprint)]} was trained on the same bytes"
    demos = sample_fingerprints(path) if is_sample_export(path) else set()
    if demos and any(key.split("-")[0] not in demos for key in kept):  # a model of a real export is kept
        return (
            f"{path} is the synthetic demo export and models of another export are kept; the sensor leaves it "
            "(set RECSYS_EXPORT_PATH in recsys.env; materialize by hand to train on the demo)"
        )
    return None


def _look(storage: RecsysStorage) -> tuple[str, "ExportLook | dg.SkipReason"]:
    """The current export and one look at it, or the reason to skip (shared by the sensor and the schedule)."""
    try:
        path = storage.export
    except OSError as exc:  # the drop folder cannot be listed
        return "", dg.SkipReason(f"cannot list the drop folder {storage.drop_folder}: {exc.strerror or exc}")
    look = ExportLook.take(path)
    return str(path), (dg.SkipReason(look) if isinstance(look, str) else look)


def _fingerprint(look: ExportLook) -> "str | dg.SkipReason":
    try:
        return look.fingerprint()
    except OSError as exc:  # unreadable (permissions), or replaced between the look and the read
        return dg.SkipReason(f"cannot read the export {look.path}: {exc.strerror or exc}")


@dg.sensor(
    job=retrain_job,
    minimum_interval_seconds=settings.SENSOR_INTERVAL.integer(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests one retraining run per new, completely written export (by fingerprint).",
)
def new_export_sensor(context: dg.SensorEvaluationContext, storage: RecsysStorage):
    result = _new_export_tick(context, storage)
    refused = _refused(storage)
    for line in refused:  # a link out of the drop folder: never followed, said in the log and the skip reason
        context.log.warning(line)
    if refused and isinstance(result, dg.SkipReason):
        return dg.SkipReason("; ".join([result.skip_message or "", *refused]))
    return result


def _refused(storage: RecsysStorage) -> list[str]:
    try:
        return refused_exports(storage.drop_folder)
    except OSError:  # the folder cannot be listed: _look's reason says so
        return []


def _new_export_tick(context: dg.SensorEvaluationContext, storage: RecsysStorage):
    cursor = json.loads(context.cursor) if context.cursor else {}
    path, look = _look(storage)
    if not isinstance(look, ExportLook):
        return look
    pending = cursor.get("pending")
    if pending != [look.path, look.size, look.mtime_ns]:
        context.update_cursor(json.dumps({**cursor, "pending": [look.path, look.size, look.mtime_ns]}))
        return dg.SkipReason(f"saw {path} ({look.size:,} bytes); waiting one more look to be sure it is complete")
    fingerprint = _fingerprint(look)
    if isinstance(fingerprint, dg.SkipReason):
        return fingerprint
    if fingerprint == cursor.get("requested"):
        return dg.SkipReason(f"{path} unchanged since the run requested for it (fingerprint {fingerprint[:12]})")
    reason = _not_new(storage, context.instance, path, fingerprint)
    if reason is not None:
        context.update_cursor(json.dumps({**cursor, "requested": fingerprint}))
        return dg.SkipReason(reason)
    context.update_cursor(json.dumps({**cursor, "requested": fingerprint}))
    return dg.RunRequest(
        run_key=fingerprint,
        tags={"recsys/export": str(path), "recsys/fingerprint": fingerprint, "recsys/trigger": "new_export_sensor"},
    )


def build_retrain_schedule(cron: str, timezone: str, force: bool) -> dg.ScheduleDefinition:
    @dg.schedule(
        job=retrain_job,
        cron_schedule=cron,
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Retrains on '{cron}' ({timezone}) when the export changed since the last ingest"
        + (" (forced: always)" if force else ""),
    )
    def retrain_schedule(context: dg.ScheduleEvaluationContext, storage: RecsysStorage):
        path, look = _look(storage)
        if not isinstance(look, ExportLook):
            return look
        fingerprint = _fingerprint(look)
        if isinstance(fingerprint, dg.SkipReason):
            return fingerprint
        if not force and fingerprint == last_ingested_fingerprint(context.instance):
            return dg.SkipReason(
                f"{path} unchanged since the last ingest (fingerprint {fingerprint[:12]}); set RECSYS_RETRAIN_FORCE=1 to retrain anyway"
            )
        return dg.RunRequest(
            tags={"recsys/export": str(path), "recsys/fingerprint": fingerprint, "recsys/trigger": "retrain_schedule"}
        )

    return retrain_schedule


retrain_schedule = build_retrain_schedule(
    settings.RETRAIN_CRON.get(), settings.TIMEZONE.get(), settings.RETRAIN_FORCE.flag()
)
