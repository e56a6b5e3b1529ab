"""One run, one export, its own tables: the pinned export, run-scoped tables, and the retry of a failed run."""

import os
import time

import dagster as dg
import pandas as pd
import pytest

from recsys_assets.core.artifact_store import ArtifactStore
from recsys_assets.core.release.history import ModelHistory
from recsys_assets.core.sample_data import SampleSpec, write_sample_export
from recsys_assets.definitions import ASSETS
from recsys_assets.defs import automation, export_runs
from recsys_assets.defs.export_pin import EXPORT_TAG, FINGERPRINT_TAG, fingerprint_now
from recsys_assets.defs.publishing import provenance, version_record
from recsys_assets.defs.resources import ParquetIOManager, RecsysStorage, resources_for

SMALL = SampleSpec(n_ratings=3_000, n_users=100, n_movies=300, seed=4)
OFF_SCALE = "7,7,9.50,100"  # parsed, then quarantined with its text rebuilt: cleaned_ratings reads the exact line


def _storage(data_dir, export="none.csv"):
    return RecsysStorage(export_path=str(export), data_dir=str(data_dir))


def _tick(instance, storage, cursor=None):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"storage": storage})
    return automation.new_export_sensor(ctx), ctx.cursor


def _request(instance, storage, cursor=None):
    """Two looks at a stable export: the second one's answer (a run request or a skip)."""
    _, cursor = _tick(instance, storage, cursor)
    return _tick(instance, storage, cursor)


def _drop(path, spec, mtime_s):
    write_sample_export(path, spec)
    with open(path, "a") as f:
        f.write(OFF_SCALE + "\n")
    os.utime(path, (mtime_s, mtime_s))
    return path


def _metadata(result, asset):
    return {k: v.value for k, v in result.asset_materializations_for_node(asset)[0].metadata.items()}


def _failure(result) -> str:
    assert not result.success
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    return next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message


# ------------------------------------------------------------------------------------------ A: pinned
def test_two_exports_dropped_in_quick_succession_each_run_loads_its_own(data_dir):
    drop = data_dir / "exports"
    drop.mkdir()
    storage = _storage(data_dir)
    now = time.time()
    with dg.instance_for_test() as instance:
        first = _drop(drop / "2026-01.csv", SMALL, now - 10)
        request_a, cursor = _request(instance, storage)
        second = _drop(drop / "2026-02.csv", SampleSpec(n_ratings=3_500, n_users=90, n_movies=250, seed=5), now)
        request_b, _ = _request(instance, storage, cursor)
        assert isinstance(request_a, dg.RunRequest) and isinstance(request_b, dg.RunRequest)
        assert storage.current_export() == second  # what a run resolving "the current export" would read
        defs = dg.Definitions(assets=ASSETS, jobs=[automation.retrain_job], resources=resources_for(storage))
        dg.validate_run_config(defs.resolve_job_def("retrain_model"), request_a.run_config)  # the sensor's job takes it
        for request, export, rows in ((request_a, first, 3_000), (request_b, second, 3_500)):
            result = dg.materialize(
                ASSETS[:2],
                resources=resources_for(storage),
                instance=instance,
                run_config=request.run_config,
                tags=request.tags,
            )
            raw, cleaned = _metadata(result, "raw_ratings"), _metadata(result, "cleaned_ratings")
            assert raw["export_path"] == str(export) and raw["dagster/row_count"] == rows + 1
            assert raw["export_fingerprint"] == request.tags[FINGERPRINT_TAG] == request.run_key
            assert cleaned["dagster/row_count"] + cleaned["quarantined_rows"] == rows + 1
            quarantine = pd.read_parquet(data_dir / "tables" / "cleaned_ratings_quarantine.parquet")
            assert quarantine.loc[quarantine["line"] == rows + 2, "raw"].tolist() == [OFF_SCALE]  # its own file's line
    assert request_a.run_key != request_b.run_key


def test_a_manual_run_pins_the_current_export_in_its_tags(tiny_export, data_dir):
    with dg.instance_for_test() as instance:
        result = dg.materialize(ASSETS[:1], resources=resources_for(_storage(data_dir, tiny_export)), instance=instance)
        tags = instance.get_run_by_id(result.run_id).tags
    raw = _metadata(result, "raw_ratings")
    assert tags[EXPORT_TAG] == str(tiny_export) and tags[FINGERPRINT_TAG] == raw["export_fingerprint"]


def test_an_export_changed_between_the_sensor_and_the_run_fails_naming_both_fingerprints(tmp_path, data_dir):
    export = write_sample_export(tmp_path / "ratings.csv", SMALL)
    storage = _storage(data_dir, export)
    with dg.instance_for_test() as instance:
        request, _ = _request(instance, storage)
        pinned = request.tags[FINGERPRINT_TAG]
        with open(export, "a") as f:  # the export is rewritten after the sensor looked
            f.write("1,2,3.0,5\n")
        now = fingerprint_now(export)
        result = dg.materialize(
            ASSETS[:2],
            resources=resources_for(storage),
            instance=instance,
            run_config=request.run_config,
            tags=request.tags,
            raise_on_error=False,
        )
    message = _failure(result)
    assert pinned in message and now in message and "changed since this run pinned it" in message


class _Meddling(ParquetIOManager):
    """Rewrites the export just before cleaned_ratings loads its input: the file changes mid-run."""

    export: str

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        with open(self.export, "a") as f:
            f.write("1,2,3.0,5\n")
        return super().load_input(context)


def test_cleaned_ratings_fails_when_the_pinned_export_changed_during_the_run(tmp_path, data_dir):
    export = _drop(tmp_path / "ratings.csv", SMALL, time.time() - 10)
    storage = _storage(data_dir, export)
    pinned = fingerprint_now(export)
    resources = {**resources_for(storage), "io_manager": _Meddling(storage=storage, export=str(export))}
    result = dg.materialize(ASSETS[:2], resources=resources, raise_on_error=False)
    message = _failure(result)
    assert "cleaned_ratings: the export" in message and pinned in message
    assert fingerprint_now(export) in message


def test_a_model_records_the_export_its_own_run_pinned(tmp_path, data_dir):
    other = write_sample_export(tmp_path / "other.csv", SMALL)

    @dg.asset
    def probe(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        record = version_record(context, {})["export_fingerprint"]
        return dg.MaterializeResult(
            metadata={"record": record, "provenance": provenance(context, {})["export_fingerprint"]}
        )

    with dg.instance_for_test() as instance:  # another run loaded another export: the latest raw_ratings
        dg.materialize(ASSETS[:1], resources=resources_for(_storage(data_dir, other)), instance=instance)
        mine = {EXPORT_TAG: str(tmp_path / "mine.csv"), FINGERPRINT_TAG: "abc-1-2"}
        result = dg.materialize([probe], instance=instance, tags=mine)
    metadata = _metadata(result, "probe")
    assert metadata["record"] == "abc-1-2" and metadata["provenance"] == "abc-1-2"


# ------------------------------------------------------------------------------------ B: run tables
def _io(data_dir):
    return ParquetIOManager(storage=_storage(data_dir))


def _write(io, run_id, frame, asset="train_ratings"):
    io.handle_output(dg.build_output_context(asset_key=dg.AssetKey(asset), run_id=run_id), frame)


def _read(io, run_id=None, asset="train_ratings"):
    key = dg.AssetKey(asset)
    upstream = (
        dg.build_output_context(asset_key=key, run_id=run_id) if run_id else dg.build_output_context(asset_key=key)
    )
    return io.load_input(dg.build_input_context(asset_key=key, upstream_output=upstream))


def test_a_run_reads_its_own_tables_while_another_run_replaces_the_latest(data_dir):
    io = _io(data_dir)
    x, y = pd.DataFrame({"rating": [1.0, 2.0]}), pd.DataFrame({"rating": [5.0]})
    _write(io, "run-x", x)
    _write(io, "run-y", y)  # a second run's splits land while run X is still running
    pd.testing.assert_frame_equal(_read(io, "run-x"), x)
    pd.testing.assert_frame_equal(_read(io, "run-y"), y)
    pd.testing.assert_frame_equal(_read(io), y)  # a run that did not make the table: the latest
    pd.testing.assert_frame_equal(_read(io, "run-z"), y)
    assert (data_dir / "tables" / "runs" / "run-x" / "train_ratings.parquet").exists()
    pd.testing.assert_frame_equal(pd.read_parquet(data_dir / "tables" / "train_ratings.parquet"), y)
    with pytest.raises(FileNotFoundError, match="materialize val_ratings first"):
        _read(io, "run-x", asset="val_ratings")


def test_old_run_folders_are_pruned_and_recent_ones_kept(data_dir):
    io, frame = _io(data_dir), pd.DataFrame({"rating": [1.0]})
    runs = data_dir / "tables" / "runs"
    day = 24 * 3600
    for n in range(6):
        _write(io, f"old-{n}", frame)
        stamp = time.time() - 2 * day - (6 - n) * 60  # old-5 is the newest of the old ones
        os.utime(runs / f"old-{n}" / "train_ratings.parquet", (stamp, stamp))
    _write(io, "recent", frame)
    os.utime(runs / "recent" / "train_ratings.parquet", (time.time() - 3600,) * 2)
    _write(io, "current", frame)
    assert sorted(p.name for p in runs.iterdir()) == ["current", "old-5", "recent"]  # the newest 3, and the last day


# ------------------------------------------------------------------------------------ C: retries
@dg.op
def _crash():
    raise RuntimeError("the worker died")


@dg.op
def _refuse():
    raise dg.Failure(description="the export is damaged", allow_retries=False)


@dg.op
def _fine():
    return 1


def _run(op, fingerprint, instance):
    job = dg.GraphDefinition(name=f"job_{op.name}", node_defs=[op]).to_job()
    job.execute_in_process(instance=instance, tags={FINGERPRINT_TAG: fingerprint}, raise_on_error=False)


@pytest.fixture
def export(tmp_path):
    return write_sample_export(tmp_path / "ratings.csv", SMALL)


def test_a_failed_run_is_retried_with_a_new_run_key_until_the_cap(export, data_dir):
    storage = _storage(data_dir, export)
    with dg.instance_for_test() as instance:
        first, cursor = _request(instance, storage)
        assert isinstance(first, dg.RunRequest) and first.run_key == first.tags[FINGERPRINT_TAG]
        fingerprint = first.run_key
        keys = []
        for _ in range(2):
            _run(_crash, fingerprint, instance)
            retry, cursor = _tick(instance, storage, cursor)
            assert isinstance(retry, dg.RunRequest) and retry.run_config == first.run_config
            keys.append(retry.run_key)
        assert keys == [f"{fingerprint}:retry-1", f"{fingerprint}:retry-2"]
        _run(_crash, fingerprint, instance)
        given_up, _ = _tick(instance, storage, cursor)
    assert isinstance(given_up, dg.SkipReason)
    assert "failed 3 times" in given_up.skip_message and "materialize the assets by hand" in given_up.skip_message


def test_a_successful_or_decided_run_counts_as_ingested(export, data_dir):
    @dg.asset(check_specs=[dg.AssetCheckSpec("gate", asset="gated", blocking=True)])
    def gated():
        yield dg.Output(1)
        yield dg.AssetCheckResult(check_name="gate", passed=False)

    storage = _storage(data_dir, export)
    with dg.instance_for_test() as instance:
        request, cursor = _request(instance, storage)
        fingerprint = request.run_key
        dg.materialize([gated], instance=instance, tags={FINGERPRINT_TAG: fingerprint}, raise_on_error=False)
        rejected, _ = _tick(instance, storage, cursor)
        assert (
            isinstance(rejected, dg.SkipReason) and "the blocking check gate of gated failed" in rejected.skip_message
        )
    for op, words in ((_refuse, "the export is damaged"), (_fine, "succeeded")):
        with dg.instance_for_test() as instance:
            _run(op, fingerprint, instance)
            skipped, _ = _request(instance, storage)
            assert isinstance(skipped, dg.SkipReason), skipped
            assert "already ingested" in skipped.skip_message and words in skipped.skip_message


def test_a_stale_started_run_is_marked_failed_and_retried(export, data_dir, monkeypatch):
    storage = _storage(data_dir, export)
    with dg.instance_for_test() as instance:
        request, cursor = _request(instance, storage)
        job = dg.GraphDefinition(name="job_fine", node_defs=[_fine]).to_job()
        run = instance.create_run_for_job(
            job, tags={FINGERPRINT_TAG: request.run_key}, status=dg.DagsterRunStatus.STARTED
        )
        busy, cursor = _tick(instance, storage, cursor)
        assert isinstance(busy, dg.SkipReason) and f"is in progress: {run.run_id}" in busy.skip_message
        monkeypatch.setattr(export_runs, "_now", lambda: time.time() + 61 * 60)  # an hour with no event
        retry, _ = _tick(instance, storage, cursor)
        assert isinstance(retry, dg.RunRequest) and retry.run_key == f"{request.run_key}:retry-1"
        stale = instance.get_run_by_id(run.run_id)
        assert stale is not None and stale.status == dg.DagsterRunStatus.FAILURE


def test_a_kept_version_that_never_went_live_does_not_block_a_fresh_instance(export, data_dir, tmp_path):
    storage = _storage(data_dir, export)
    with dg.instance_for_test() as instance:
        fingerprint = _request(instance, storage)[0].run_key
    model = tmp_path / "model.pth"
    model.write_bytes(b"recorded, then the run was killed before the switch")
    ModelHistory(ArtifactStore(data_dir), "recommendation_model.pth").record_file(
        model, {"export_fingerprint": fingerprint}, "v0001"
    )
    with dg.instance_for_test() as fresh:
        request, _ = _request(fresh, storage)
    assert isinstance(request, dg.RunRequest) and request.run_key == fingerprint
