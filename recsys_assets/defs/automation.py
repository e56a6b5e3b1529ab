"""Retraining that runs itself: a sensor for new exports and a nightly schedule.

* ``new_export_sensor`` (on by default) looks at the current export every
  ``RECSYS_SENSOR_INTERVAL`` seconds (default 30).  A new or changed file is
  first seen as *pending*; when a later look finds it unchanged (size and
  modification time), it is complete, and one run of the whole asset chain is
  requested for its fingerprint (the run key), pinned to that file and
  fingerprint (``raw_ratings``' run config; ``defs/export_pin.py``), unless the
  export was already ingested.  Ingested means a run for these bytes finished
  (``defs/export_runs.py``): it succeeded, or failed on a decision (the model
  rejected by the promotion rule, a bad export).  A run that failed by accident
  (a crash; a killed run, taken for dead after ``RECSYS_STALE_RUN_MINUTES`` with
  no event and marked failed) is retried with a new run key, at most
  ``RECSYS_EXPORT_RETRIES`` times.  With no run recorded (a fresh instance), an
  export whose bytes the live models were trained on counts as ingested, so a
  restart does not publish a byte-identical version again.  Once models of a
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
from recsys_assets.defs.export_pin import EXPORT_TAG, FINGERPRINT_TAG, run_config
from recsys_assets.defs.export_runs import export_runs, verdict
from recsys_assets.defs.resources import RecsysStorage

SENSOR = "new_export_sensor"

retrain_job = dg.define_asset_job(
    "retrain_model",
    selection=dg.AssetSelection.all(),
    description="Ingest the current export and retrain the model (every asset, with their checks).",
)


def _histories(storage: RecsysStorage):
    """(kind, ModelHistory) of both published models (``core/release/history.py``)."""
    from recsys_assets.core.release.candidate import MODEL_FILES
    from recsys_assets.core.release.history import ModelHistory

    for kind, name in sorted(MODEL_FILES.items()):
        yield kind, ModelHistory(storage.store, name)


def kept_exports(storage: RecsysStorage, *, live_only: bool = False) -> dict[str, str]:
    """The exports behind the kept model versions: content key -> which version. ``live_only``: only the
    versions that are the published files now (a version is recorded before it goes live, so a run stopped
    between the two leaves a version that never went live)."""
    kept = {}
    for kind, history in _histories(storage):
        try:
            versions = history.versions()
            live = history.current(versions) if live_only else None
        except (OSError, ValueError):  # an unreadable history: the runs' records still count
            continue
        for version in versions:
            fingerprint = version.record.get("export_fingerprint")
            if isinstance(fingerprint, str) and fingerprint and (not live_only or version.name == live):
                kept[content_key(fingerprint)] = f"the {'live' if live_only else 'kept'} {kind} model {version.name}"
    return kept


def _not_new(storage: RecsysStorage, path: str, fingerprint: str) -> str | None:
    """Why the sensor leaves an export that no run was recorded for alone (the published models were trained
    on the same bytes, say on a fresh instance; or it is the demo export), or None."""
    live = kept_exports(storage, live_only=True)
    if content_key(fingerprint) in live:
        return f"{path} was already ingested: {live[content_key(fingerprint)]} was trained on the same bytes"
    demos = sample_fingerprints(path) if is_sample_export(path) else set()
    if demos and any(key.split("-")[0] not in demos for key in kept_exports(storage)):  # a real export's model
        return (
            f"{path} is the synthetic demo export and models of another export are kept; the sensor leaves it "
            "(set RECSYS_EXPORT_PATH in recsys.env; materialize by hand to train on the demo)"
        )
    return None


def _request(path: str, fingerprint: str, trigger: str, run_key: str | None = None) -> dg.RunRequest:
    """A run of the whole chain pinned to ``path`` with ``fingerprint`` (run config and tags)."""
    return dg.RunRequest(
        run_key=run_key,
        run_config=run_config(path, fingerprint),
        tags={EXPORT_TAG: path, FINGERPRINT_TAG: fingerprint, "recsys/trigger": trigger},
    )


def _look(storage: RecsysStorage) -> tuple[str, "ExportLook | dg.SkipReason"]:
    """The current export and one look at it, or the reason to skip (shared by the sensor and the schedule)."""
    try:
        path = storage.current_export()
    except OSError as exc:  # the drop folder cannot be listed
        return "", dg.SkipReason(f"cannot list the drop folder {storage.drop_folder}: {exc.strerror or exc}")
    look = ExportLook.take(path)
    return str(path), (dg.SkipReason(look) if isinstance(look, str) else look)


def _fingerprint(look: ExportLook) -> "str | dg.SkipReason":
    try:
        return look.fingerprint()
    except OSError as exc:  # unreadable (permissions), or replaced between the look and the read
        return dg.SkipReason(f"cannot read the export {look.path}: {exc.strerror or exc}")


def _setting_or_default(read, setting) -> tuple[object, str | None]:
    """A setting's value, or its default and the one-line reason when the value is bad: a bad automation
    setting stops only the sensor or schedule that reads it (it says why on every tick), never the code
    location (every asset run loads it)."""
    try:
        return read(), None
    except ValueError as exc:
        return read({setting.name: setting.default}), f"{exc}; the sensor waits until it is fixed"


_INTERVAL, _BAD_INTERVAL = _setting_or_default(settings.SENSOR_INTERVAL.integer, settings.SENSOR_INTERVAL)


@dg.sensor(
    job=retrain_job,
    minimum_interval_seconds=int(_INTERVAL),  # pyright: ignore[reportArgumentType]
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests one retraining run per new, completely written export (by fingerprint).",
)
def new_export_sensor(context: dg.SensorEvaluationContext, storage: RecsysStorage):
    if _BAD_INTERVAL:
        return dg.SkipReason(_BAD_INTERVAL)
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
    runs = export_runs(context.instance, fingerprint)
    for line in runs.marked:
        context.log.warning(line)
    if runs.any:  # the runs for these bytes say: ingested, in progress, given up on, or retry
        decided = verdict(runs, path, fingerprint)
        return decided if isinstance(decided, dg.SkipReason) else _request(path, fingerprint, SENSOR, decided)
    if fingerprint == cursor.get("requested"):
        return dg.SkipReason(f"{path} unchanged since the run requested for it (fingerprint {fingerprint[:12]})")
    context.update_cursor(json.dumps({**cursor, "requested": fingerprint}))
    reason = _not_new(storage, path, fingerprint)
    return dg.SkipReason(reason) if reason is not None else _request(path, fingerprint, SENSOR, fingerprint)


def _ingested(instance: dg.DagsterInstance, storage: RecsysStorage, path: str, fingerprint: str) -> str | None:
    """Why the schedule leaves the export alone (a run for it finished or is in progress, or the published
    models were trained on it), or None."""
    runs = export_runs(instance, fingerprint)
    short = fingerprint[:12]
    if runs.succeeded or runs.decided:
        return f"{path} unchanged since the last ingest (fingerprint {short})"
    if runs.in_progress:
        return f"a run for {path} is in progress: {runs.in_progress[0]}"
    live = kept_exports(storage, live_only=True)
    if content_key(fingerprint) in live:
        return f"{path} unchanged since the last ingest: {live[content_key(fingerprint)]} was trained on it"
    return None


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
        if not force:
            reason = _ingested(context.instance, storage, path, fingerprint)
            if reason is not None:
                return dg.SkipReason(f"{reason}; set RECSYS_RETRAIN_FORCE=1 to retrain anyway")
        return _request(path, fingerprint, "retrain_schedule")

    return retrain_schedule


def _schedule_from_settings() -> dg.ScheduleDefinition:
    """The schedule from RECSYS_RETRAIN_CRON / RECSYS_TIMEZONE; with a bad value, the default one that skips
    every tick naming it (the code location still loads)."""
    try:
        return build_retrain_schedule(
            settings.RETRAIN_CRON.get(), settings.TIMEZONE.get(), settings.RETRAIN_FORCE.flag()
        )
    except dg.DagsterInvalidDefinitionError as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        reason = f"RECSYS_RETRAIN_CRON or RECSYS_TIMEZONE is not valid ({first}); the schedule waits until it is fixed"

        @dg.schedule(
            job=retrain_job,
            cron_schedule=settings.RETRAIN_CRON.default,
            default_status=dg.DefaultScheduleStatus.STOPPED,
            name="retrain_schedule",
            description=reason,
        )
        def broken(context: dg.ScheduleEvaluationContext):
            return dg.SkipReason(reason)

        return broken


retrain_schedule = _schedule_from_settings()
