import hashlib
import json

import dagster as dg
import numpy as np
import pandas as pd

from recsys_assets.core.exports import mark_sample
from recsys_assets.core.ingest import CheckpointStore
from recsys_assets.core.locks import exclusive_lock
from recsys_assets.core.sample_data import SampleSpec, write_sample_export
from recsys_assets.defs import automation, checks, features, ingest, training
from recsys_assets.defs.resources import DeviceResource, RecsysStorage, resources_for

ASSETS = [
    ingest.raw_ratings,
    ingest.cleaned_ratings,
    features.user_movie_mappings,
    features.rating_splits,
    training.recommendation_model,
    training.training_loss_plot,
    checks.cleaned_ratings_checks,
    checks.split_checks,
]
SMALL = SampleSpec(n_ratings=3_000, n_users=100, n_movies=300, seed=4)


def _storage(export, data_dir):
    return RecsysStorage(export_path=str(export), data_dir=str(data_dir))


def _resources(export, data_dir):
    return resources_for(_storage(export, data_dir), DeviceResource(device="cpu"))


def _tick(instance, storage, cursor=None):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"storage": storage})
    result = automation.new_export_sensor(ctx)
    return result, ctx.cursor


def _checks(result):
    return {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


# --------------------------------------------------------------------------- sensor
def test_sensor_waits_for_a_stable_file_then_requests_one_run(tmp_path, data_dir):
    export = write_sample_export(tmp_path / "ratings.csv", SMALL)
    storage = _storage(export, data_dir)
    with dg.instance_for_test() as instance:
        first, cursor = _tick(instance, storage)
        assert isinstance(first, dg.SkipReason) and "waiting one more look" in first.skip_message
        second, cursor = _tick(instance, storage, cursor)
        assert isinstance(second, dg.RunRequest)
        assert second.run_key and second.tags["recsys/export"] == str(export)
        third, cursor = _tick(instance, storage, cursor)
        assert isinstance(third, dg.SkipReason) and "unchanged" in third.skip_message
        assert json.loads(cursor)["requested"] == second.run_key  # the cursor round-trips as JSON

        write_sample_export(export, SampleSpec(n_ratings=3_500, n_users=100, n_movies=300, seed=5))
        changed, cursor = _tick(instance, storage, cursor)
        assert isinstance(changed, dg.SkipReason) and "waiting" in changed.skip_message
        again, cursor = _tick(instance, storage, cursor)
        assert isinstance(again, dg.RunRequest) and again.run_key != second.run_key


def test_sensor_ignores_a_file_still_growing(tmp_path, data_dir):
    export = tmp_path / "ratings.csv"
    export.write_text("userId,movieId,rating,timestamp\n1,1,4.0,1\n")
    storage = _storage(export, data_dir)
    with dg.instance_for_test() as instance:
        _, cursor = _tick(instance, storage)
        with open(export, "a") as f:
            f.write("1,2,3.0,2\n")
        growing, cursor = _tick(instance, storage, cursor)
        assert isinstance(growing, dg.SkipReason) and "waiting" in growing.skip_message
        stable, _ = _tick(instance, storage, cursor)
        assert isinstance(stable, dg.RunRequest)


def test_sensor_reports_a_missing_export_and_skips_what_was_ingested(tmp_path, data_dir):
    with dg.instance_for_test() as instance:
        missing, _ = _tick(instance, _storage(tmp_path / "none.csv", data_dir))
        assert isinstance(missing, dg.SkipReason) and "no export at" in missing.skip_message

        export = write_sample_export(tmp_path / "ratings.csv", SMALL)
        assert dg.materialize([ingest.raw_ratings], resources=_resources(export, data_dir), instance=instance).success
        _, cursor = _tick(instance, _storage(export, data_dir))
        done, _ = _tick(instance, _storage(export, data_dir), cursor)
        assert isinstance(done, dg.SkipReason) and "already ingested" in done.skip_message


def test_sensor_and_schedule_skip_with_a_reason_on_a_folder_or_a_symlink_loop(tmp_path, data_dir):
    folder = tmp_path / "a_folder.csv"
    folder.mkdir()
    loop = tmp_path / "loop.csv"
    loop.symlink_to(loop)
    with dg.instance_for_test() as instance:
        for path, reason in ((folder, "not a regular file"), (loop, "cannot look at the export")):
            skipped, _ = _tick(instance, _storage(path, data_dir))
            assert isinstance(skipped, dg.SkipReason) and reason in skipped.skip_message
            ctx = dg.build_schedule_context(instance=instance, resources={"storage": _storage(path, data_dir)})
            scheduled = automation.retrain_schedule(ctx)
            assert isinstance(scheduled, dg.SkipReason) and reason in scheduled.skip_message


def test_run_keys_deduplicate_requests(tmp_path, data_dir):
    export = write_sample_export(tmp_path / "ratings.csv", SMALL)
    storage = _storage(export, data_dir)
    with dg.instance_for_test() as instance:
        _, cursor = _tick(instance, storage)
        first, _ = _tick(instance, storage, cursor)
        # a fresh cursor (say, after a reset) gives the same run key, which Dagster launches once
        _, fresh = _tick(instance, storage)
        repeat, _ = _tick(instance, storage, fresh)
        assert repeat.run_key == first.run_key


def test_sensor_skips_exports_behind_kept_versions_and_the_demo_once_a_real_export_is_published(tmp_path, data_dir):
    import os
    import shutil

    sample = write_sample_export(tmp_path / "sample.csv", SMALL)
    mine = shutil.copy(sample, tmp_path / "mine.csv")  # the user's own file: no sample marker
    with dg.instance_for_test() as instance:
        assert dg.materialize(ASSETS, resources=_resources(mine, data_dir), instance=instance).success
    assert (data_dir / "models" / "recommendation_model" / "v0001.json").exists()
    again = shutil.copy(mine, tmp_path / "again.csv")  # the same bytes, a new modification time
    os.utime(again, ns=(1, 1))
    demo = write_sample_export(tmp_path / "demo.csv", SampleSpec(n_ratings=3_000, n_users=100, n_movies=300, seed=9))
    mark_sample(demo)  # as `recsys sample` does: the demo export
    with dg.instance_for_test() as fresh:  # a restart on a new instance: no materialization recorded
        for path, reason in ((again, "model v0001 was trained on the same bytes"), (demo, "synthetic demo export")):
            _, cursor = _tick(fresh, _storage(path, data_dir))
            skipped, _ = _tick(fresh, _storage(path, data_dir), cursor)
            assert isinstance(skipped, dg.SkipReason) and reason in skipped.skip_message, skipped
        with open(demo, "a") as f:  # edited by hand: no longer the sample that was written
            f.write("1,1,4.0,1\n")
        _, cursor = _tick(fresh, _storage(demo, data_dir))
        assert isinstance(_tick(fresh, _storage(demo, data_dir), cursor)[0], dg.RunRequest)


# ------------------------------------------------------------------------- schedule
def test_schedule_skips_when_unchanged_and_runs_when_changed_or_forced(tmp_path, data_dir):
    export = write_sample_export(tmp_path / "ratings.csv", SMALL)
    resources = {"storage": _storage(export, data_dir)}
    with dg.instance_for_test() as instance:
        ctx = dg.build_schedule_context(instance=instance, resources=resources)
        assert isinstance(automation.retrain_schedule(ctx), dg.RunRequest)  # never ingested yet
        dg.materialize([ingest.raw_ratings], resources=_resources(export, data_dir), instance=instance)
        ctx = dg.build_schedule_context(instance=instance, resources=resources)
        skipped = automation.retrain_schedule(ctx)
        assert isinstance(skipped, dg.SkipReason) and "unchanged" in skipped.skip_message
        forced = automation.build_retrain_schedule("0 3 * * *", "UTC", force=True)
        assert isinstance(forced(dg.build_schedule_context(instance=instance, resources=resources)), dg.RunRequest)
    assert automation.retrain_schedule.cron_schedule == "0 3 * * *"
    assert automation.retrain_schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert automation.new_export_sensor.default_status == dg.DefaultSensorStatus.RUNNING


# --------------------------------------------------------------------------- checks


def test_checks_pass_on_a_good_run_and_a_bad_model_is_not_published(tmp_path, data_dir):
    export = write_sample_export(tmp_path / "ratings.csv", SMALL)
    with dg.instance_for_test() as instance:
        good = dg.materialize(ASSETS, resources=_resources(export, data_dir), instance=instance)
        assert good.success and all(_checks(good).values()) and len(_checks(good)) == 11
        model = data_dir / "recommendation_model.pth"
        digest = hashlib.sha256(model.read_bytes()).hexdigest()

        # no collaborative signal: every user and movie appears once, so no model beats the mean
        rng = np.random.default_rng(0)
        export.write_text(
            "userId,movieId,rating,timestamp\n"
            + "".join(f"{k},{k},{rng.integers(1, 11) / 2},{k}\n" for k in range(1, 3001))
        )
        bad = dg.materialize(ASSETS, resources=_resources(export, data_dir), instance=instance, raise_on_error=False)
        assert not bad.success
        assert _checks(bad)["beats_global_mean"] is False and _checks(bad)["weights_finite"] is True
        failed = [e.step_key for e in bad.all_events if e.is_step_failure]
        assert failed == ["recommendation_model"]
        assert not [
            e for e in bad.get_asset_materialization_events() if e.asset_key == dg.AssetKey("training_loss_plot")
        ]
        assert hashlib.sha256(model.read_bytes()).hexdigest() == digest  # the previous good model stays
        assert (data_dir / "recommendation_model.rejected.pth").exists()


# ---------------------------------------------------------------------- concurrency
def test_overlapping_runs_cannot_corrupt_shared_artifacts(tmp_path, data_dir):
    export = write_sample_export(tmp_path / "ratings.csv", SMALL)
    resources = _resources(export, data_dir)
    assert dg.materialize(ASSETS[:6], resources=resources).success
    model = data_dir / "recommendation_model.pth"
    digest = hashlib.sha256(model.read_bytes()).hexdigest()

    # another run is training (it holds the model's lock): this one fails clearly, the file is intact
    with exclusive_lock(data_dir / "locks" / "recommendation_model.lock", "another run"):
        result = dg.materialize(ASSETS[:6], resources=resources, raise_on_error=False)
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "recommendation_model"
    assert "being written by another run" in failure.step_failure_data.error.to_string()
    assert hashlib.sha256(model.read_bytes()).hexdigest() == digest

    # another run is loading the export (it holds the checkpoint's lock): the ingest fails clearly
    with CheckpointStore(data_dir / "checkpoints" / "raw_ratings.checkpoint.json").locked():
        result = dg.materialize(ASSETS[:1], resources=resources, raise_on_error=False)
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "in use by another load" in failure.step_failure_data.error.to_string()
    assert pd.read_parquet(data_dir / "tables" / "raw_ratings.parquet").shape[0] == SMALL.n_ratings


def test_a_bad_automation_setting_stops_only_its_sensor_or_schedule():
    """A bad RECSYS_SENSOR_INTERVAL or RECSYS_RETRAIN_CRON leaves the code location loadable (every asset run
    loads it); the sensor / schedule skips each tick with one line naming the setting."""
    import os
    import subprocess
    import sys

    probe = (
        "import dagster as dg\n"
        "from recsys_assets.definitions import defs\n"
        "from recsys_assets.defs import automation as a\n"
        "defs().resolve_job_def('retrain_model')\n"
        "from recsys_assets.defs.resources import default_resources\n"
        "tick = a.new_export_sensor(dg.build_sensor_context(resources={'storage': default_resources()['storage']}))\n"
        "print('SENSOR', getattr(tick, 'skip_message', tick))\n"
        "print('SCHEDULE', a.retrain_schedule.description)\n"
    )
    for name, value, needle in (
        ("RECSYS_SENSOR_INTERVAL", "abc", "SENSOR RECSYS_SENSOR_INTERVAL must be a whole number, got 'abc'"),
        ("RECSYS_RETRAIN_CRON", "not a cron", "SCHEDULE RECSYS_RETRAIN_CRON or RECSYS_TIMEZONE is not valid"),
    ):
        proc = subprocess.run(
            [sys.executable, "-c", probe], env={**os.environ, name: value}, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert needle in proc.stdout, proc.stdout
