"""The export one run reads, pinned once: its path and its fingerprint, checked before every read.

The drop folder's newest file changes whenever an export lands, so a run must not ask for "the
current export" more than once.  The sensor and the schedule pin it in the run config of
``raw_ratings`` (``export_path``, ``export_fingerprint``) and in the run's tags; a run started by hand
(empty config) pins the drop folder's current export when ``raw_ratings`` starts.  ``raw_ratings``
records the pin as the run tags ``recsys/export`` and ``recsys/fingerprint`` (and in its output
metadata), where the later steps of the same run read it (:func:`pinned_export`).  Before a step reads
the file it checks that the file still has the pinned fingerprint; a file changed or removed since
fails the step, naming both fingerprints (:meth:`PinnedExport.require`).
"""

from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from recsys_assets.core.exports import ExportLook

EXPORT_TAG = "recsys/export"
FINGERPRINT_TAG = "recsys/fingerprint"
RAW_RATINGS = dg.AssetKey("raw_ratings")


def fingerprint_now(path: Path) -> str:
    """The file's fingerprint now, or in words why it has none (gone, not a file, unreadable)."""
    look = ExportLook.take(path)
    if isinstance(look, str):
        return f"none ({look})"
    try:
        return look.fingerprint()
    except OSError as exc:
        return f"none (cannot read it: {exc.strerror or exc})"


@dataclass(frozen=True)
class PinnedExport:
    """The export a run reads: ``path`` with ``fingerprint``; ``same_run``: pinned by this run (else
    taken from the latest ``raw_ratings`` materialization of an earlier run)."""

    path: Path
    fingerprint: str
    same_run: bool = True

    def changed(self) -> str | None:
        """The file's fingerprint now when it is no longer the pinned one, else None."""
        now = fingerprint_now(self.path)
        return None if now == self.fingerprint else now

    def require(self, step: str, now: str | None = None) -> None:
        """Fail ``step`` (no retries) unless the file still has the pinned fingerprint (``now``: already taken)."""
        now = now if now is not None else self.changed()
        if now is not None and now != self.fingerprint:
            raise dg.Failure(
                description=f"{step}: the export {self.path} changed since this run pinned it (pinned fingerprint "
                f"{self.fingerprint}, now {now}); the run is not trained on other bytes, and the new file gets a "
                "run of its own",
                allow_retries=False,
            )

    def tags(self) -> dict[str, str]:
        return {EXPORT_TAG: str(self.path), FINGERPRINT_TAG: self.fingerprint}


def run_config(path: str, fingerprint: str) -> dict:
    """The run config that pins ``path`` with ``fingerprint`` for ``raw_ratings`` (the sensor, the schedule)."""
    return {"ops": {"raw_ratings": {"config": {"export_path": path, "export_fingerprint": fingerprint}}}}


def _run_tags(context: dg.AssetExecutionContext) -> dict[str, str]:
    """The run's tags as stored now (tags added by an earlier step of this run included)."""
    run = context.instance.get_run_by_id(context.run.run_id)
    return dict((run or context.run).tags)


def pin_export(context: dg.AssetExecutionContext, path: str, fingerprint: str, current) -> PinnedExport:
    """``raw_ratings``' pin: its config (``path``, ``fingerprint``), else the run's tags (an earlier attempt of
    the step), else ``current()``, the drop folder's current export (its fingerprint is then the one the load
    reads, :func:`record_pin`). A pinned fingerprint the file no longer has fails the step."""
    if fingerprint and not path:
        raise dg.Failure(description="raw_ratings: export_fingerprint is set without export_path", allow_retries=False)
    tags = _run_tags(context)
    if not path and EXPORT_TAG in tags and FINGERPRINT_TAG in tags:
        path, fingerprint = tags[EXPORT_TAG], tags[FINGERPRINT_TAG]
    pin = PinnedExport(Path(path) if path else current(), fingerprint)
    if fingerprint:
        pin.require("raw_ratings")
    return pin


def record_pin(context: dg.AssetExecutionContext, pin: PinnedExport, loaded: str) -> PinnedExport:
    """After the load (``loaded``: the fingerprint of the bytes read): fail unless they are the pinned ones,
    then record the pin in the run's tags, where the later steps of the run read it."""
    if pin.fingerprint:
        pin.require("raw_ratings", loaded)
    pin = PinnedExport(pin.path, loaded)
    tags = _run_tags(context)
    missing = {k: v for k, v in pin.tags().items() if tags.get(k) != v}
    if missing:
        context.instance.add_run_tags(context.run.run_id, missing)
    return pin


def pinned_export(context: dg.AssetExecutionContext) -> PinnedExport | None:
    """The export this run pinned (its tags), else the one behind the latest ``raw_ratings`` table (a run
    that did not load the export), else None."""
    tags = _run_tags(context)
    if EXPORT_TAG in tags and FINGERPRINT_TAG in tags:
        return PinnedExport(Path(tags[EXPORT_TAG]), tags[FINGERPRINT_TAG])
    event = context.instance.get_latest_materialization_event(RAW_RATINGS)
    if event is None or event.asset_materialization is None:
        return None
    metadata = event.asset_materialization.metadata
    path, fingerprint = metadata.get("export_path") or metadata.get("source"), metadata.get("export_fingerprint")
    if path is None or fingerprint is None:
        return None
    return PinnedExport(Path(str(path.value)), str(fingerprint.value), same_run=False)
