"""What the runs for one export say: ingested, in progress, to be retried, or given up on.

An export counts as ingested when a run for its bytes (the run tag ``recsys/fingerprint``, which the
sensor and the schedule set and ``raw_ratings`` adds to a run started by hand) *finished*: it
succeeded (the models published), or it failed on a decision, not an accident: a blocking check
failed (the promotion rule rejected the model) or a step failed with a ``dg.Failure`` (a bad export, a
setting, a file changed since the run pinned it), which a retry would only repeat.

Any other failure (a crash, a transient error, a run killed and marked failed) is retried with a new
run key, ``RECSYS_EXPORT_RETRIES`` times (default 2); then the sensor gives up and says how to retry
by hand.  A run that started and then logged nothing for ``RECSYS_STALE_RUN_MINUTES`` (default 60) is
taken for dead (a killed process leaves a local run STARTED for ever): it is marked failed, then retried.
A canceled run is not retried (someone stopped it).
"""

import time
from dataclasses import dataclass, field

import dagster as dg

from recsys_assets import settings
from recsys_assets.defs.export_pin import FINGERPRINT_TAG

S = dg.DagsterRunStatus
IN_PROGRESS = {S.QUEUED, S.NOT_STARTED, S.STARTING, S.STARTED, S.CANCELING, S.MANAGED}
STALEABLE = {S.NOT_STARTED, S.STARTING, S.STARTED}  # a queued run may wait for its turn as long as it takes
MANUAL = "materialize the assets by hand to ingest it (dg launch --job retrain_model, or the UI)"


def _now() -> float:
    return time.time()


@dataclass
class ExportRuns:
    """The runs for one export fingerprint, by what they mean (each entry names its run)."""

    succeeded: list[str] = field(default_factory=list)
    in_progress: list[str] = field(default_factory=list)
    decided: list[str] = field(default_factory=list)  # failed on a decision: "run <id>: <why>"
    canceled: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # failed by accident: retried
    marked: list[str] = field(default_factory=list)  # the stale runs marked failed by this look, as sentences

    @property
    def any(self) -> bool:
        return bool(self.succeeded or self.in_progress or self.decided or self.canceled or self.failed)


def _last_activity(instance: dg.DagsterInstance, record) -> float:
    """When the run last did anything: its latest event, else its record's last update."""
    latest = instance.get_records_for_run(record.dagster_run.run_id, ascending=False, limit=1).records
    updated = record.update_timestamp.timestamp()
    return max([updated, *(r.timestamp for r in latest)])


def _decision(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """Why a failed run failed on a decision (a failed blocking check, a ``dg.Failure``), or None."""
    types = {dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.ASSET_CHECK_EVALUATION}
    for record in instance.get_records_for_run(run_id, of_type=types).records:
        event = record.event_log_entry.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            check = event.asset_check_evaluation_data
            if not check.passed and check.blocking:
                return f"the blocking check {check.check_name} of {check.asset_key.to_user_string()} failed"
        elif event.step_failure_data.user_failure_data is not None:
            why = event.step_failure_data.user_failure_data.description or ""
            return f"{event.step_key}: {(why.strip().splitlines() or ['failed'])[0][:200]}"
    return None


def _mark_stale(instance: dg.DagsterInstance, record, minutes: int) -> str | None:
    """Mark the run failed when it has logged nothing for ``minutes``; the sentence that says so, else None."""
    run = record.dagster_run
    idle = _now() - _last_activity(instance, record)
    if run.status not in STALEABLE or idle < minutes * 60:
        return None
    sentence = (
        f"run {run.run_id} ({run.status.value}) logged nothing for {idle / 60:.0f} minutes "
        f"(RECSYS_STALE_RUN_MINUTES={minutes}): its process is taken for dead and the run marked failed"
    )
    instance.report_run_failed(run, message=sentence)
    return sentence


def _sort(instance: dg.DagsterInstance, record, runs: ExportRuns, minutes: int) -> None:
    run = record.dagster_run
    marked = _mark_stale(instance, record, minutes)
    if marked:
        runs.marked.append(marked)
        runs.failed.append(run.run_id)
    elif run.status == S.SUCCESS:
        runs.succeeded.append(run.run_id)
    elif run.status in IN_PROGRESS:
        runs.in_progress.append(f"{run.run_id} ({run.status.value})")
    elif run.status == S.CANCELED:
        runs.canceled.append(run.run_id)
    elif (why := _decision(instance, run.run_id)) is not None:
        runs.decided.append(f"run {run.run_id}: {why}")
    else:
        runs.failed.append(run.run_id)


def export_runs(instance: dg.DagsterInstance, fingerprint: str) -> ExportRuns:
    """The runs tagged with ``fingerprint``, sorted by what they mean (stale ones marked failed first)."""
    minutes = settings.STALE_RUN_MINUTES.integer()
    runs = ExportRuns()
    for record in instance.get_run_records(filters=dg.RunsFilter(tags={FINGERPRINT_TAG: fingerprint})):
        _sort(instance, record, runs, minutes)
    return runs


def verdict(runs: ExportRuns, path: str, fingerprint: str) -> "dg.SkipReason | str":
    """What to do about an export with runs: a skip reason, or the run key of a retry."""
    short = fingerprint[:12]
    if runs.succeeded:
        return dg.SkipReason(f"{path} was already ingested: run {runs.succeeded[0]} for it succeeded ({short})")
    if runs.in_progress:
        return dg.SkipReason(f"a run for {path} is in progress: {runs.in_progress[0]}")
    if runs.decided:
        return dg.SkipReason(f"{path} was already ingested: {runs.decided[0]}; to run it again, {MANUAL}")
    if runs.canceled:
        return dg.SkipReason(f"the run for {path} was canceled (run {runs.canceled[0]}); to run it again, {MANUAL}")
    retries = settings.EXPORT_RETRIES.integer(minimum=0)
    failures = len(runs.failed)
    if failures > retries:
        return dg.SkipReason(
            f"{path} failed {failures} times (runs {', '.join(runs.failed)}); the sensor stops retrying it "
            f"(RECSYS_EXPORT_RETRIES={retries}): to retry, {MANUAL}"
        )
    return f"{fingerprint}:retry-{failures}"
