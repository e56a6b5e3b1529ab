import gzip
import logging

import dagster as dg
import pytest

from recsys_assets.core.ingest import CheckpointPathError, confined_checkpoint_path
from recsys_assets.definitions import ASSETS
from recsys_assets.defs import automation, ingest
from recsys_assets.defs.resources import ParquetIOManager, RecsysStorage, resources_for


def _resources(export, data_dir):
    return {
        "storage": RecsysStorage(export_path=str(export), data_dir=str(data_dir)),
        "io_manager": ParquetIOManager(base_dir=str(data_dir / "tables")),
    }


@pytest.mark.parametrize("name", ["../recommendation_model.pth", "ABSOLUTE", "sub/../../recommendation_model.pth"])
def test_a_checkpoint_file_outside_the_checkpoint_folder_is_refused_and_nothing_is_deleted(tiny_export, data_dir, name):
    victim = data_dir / "recommendation_model.pth"
    victim.write_bytes(b"a good model")
    (data_dir / "recommendation_model.pth.parts").mkdir()
    name = str(victim) if name == "ABSOLUTE" else name
    run_config = dg.RunConfig(ops={"raw_ratings": ingest.RawRatingsConfig(checkpoint_file=name)})
    result = dg.materialize(
        ASSETS[:1], resources=_resources(tiny_export, data_dir), run_config=run_config, raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "outside the checkpoint folder" in failure.step_failure_data.error.to_string()
    assert victim.read_bytes() == b"a good model" and (data_dir / "recommendation_model.pth.parts").is_dir()


def test_checkpoint_names_inside_the_folder_are_accepted(tmp_path):
    folder = tmp_path / "checkpoints"
    assert confined_checkpoint_path(folder, "", default="raw.json") == (folder / "raw.json").resolve()
    assert confined_checkpoint_path(folder, "sub/x.json", default="raw.json") == (folder / "sub" / "x.json").resolve()
    assert confined_checkpoint_path(folder, str(folder / "y.json"), default="raw.json") == (folder / "y.json").resolve()
    (tmp_path / "elsewhere").mkdir()
    folder.mkdir()
    (folder / "link").symlink_to(tmp_path / "elsewhere")
    for bad in ("link/x.json", "recommendation_model.training.pt", ".", "/etc/passwd"):
        with pytest.raises(CheckpointPathError):
            confined_checkpoint_path(folder, bad, default="raw.json")


def _failure_without_retries(result) -> str:
    assert not result.success
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    failure = next(e for e in result.all_events if e.is_step_failure)
    return failure.step_failure_data.error.message


@pytest.mark.parametrize(
    "setting, value, words",
    [
        ("RECSYS_GZIP_MAX_BYTES", "65536", "more than 65,536 bytes, the cap set by RECSYS_GZIP_MAX_BYTES"),
        ("RECSYS_GZIP_MAX_ROWS", "500", "more than 500 rows, the cap set by RECSYS_GZIP_MAX_ROWS"),
        ("RECSYS_GZIP_MAX_RATIO", "50", "expands more than 50 times"),  # the default; this bomb expands ~500 times
    ],
)
def test_a_gzip_export_over_a_cap_fails_once_naming_the_setting(tmp_path, data_dir, monkeypatch, setting, value, words):
    """A real bomb made here: 3 million identical rows, 30 MB of text in well under a MiB of gzip."""
    bomb = tmp_path / "ratings.csv.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as f:
        f.write(b"userId,movieId,rating,timestamp\n" + b"1,1,4.0,0\n" * 3_000_000)
    monkeypatch.setenv("RECSYS_GZIP_MAX_RATIO", "100000")  # the other caps are reached first only without it
    monkeypatch.setenv(setting, value)
    result = dg.materialize(ASSETS[:1], resources=_resources(bomb, data_dir), raise_on_error=False)
    assert words in _failure_without_retries(result)


@pytest.mark.parametrize(
    "setup, words",
    [
        ("env", "RECSYS_GZIP_MAX_ROWS must be a whole number"),  # a setting: fixed by its owner, not by a retry
        ("config", "chunk_size must be at least 1"),
    ],
)
def test_bad_settings_fail_once(tiny_export, data_dir, monkeypatch, setup, words):
    run_config = None
    if setup == "env":
        monkeypatch.setenv("RECSYS_GZIP_MAX_ROWS", "many")
    else:
        run_config = dg.RunConfig(ops={"raw_ratings": ingest.RawRatingsConfig(chunk_size=0)})
    result = dg.materialize(
        ASSETS[:1], resources=_resources(tiny_export, data_dir), run_config=run_config, raise_on_error=False
    )
    assert words in _failure_without_retries(result)


def test_a_link_out_of_the_drop_folder_is_not_ingested_and_the_sensor_says_so(tiny_export, tmp_path, data_dir):
    drop = data_dir / "exports"
    drop.mkdir()
    secret = tmp_path / "private" / "ratings.csv"
    secret.parent.mkdir()
    secret.write_bytes(tiny_export.read_bytes()[:2_000].rsplit(b"\n", 1)[0] + b"\n")  # another file
    (drop / "2026-06.csv").symlink_to(secret)
    storage = RecsysStorage(export_path=str(tiny_export), data_dir=str(data_dir))
    assert storage.current_export() == tiny_export
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"storage": storage})
        skip = automation.new_export_sensor(context)
        assert isinstance(skip, dg.SkipReason)
        assert f"{drop / '2026-06.csv'} is a symbolic link to {secret}, outside the drop folder" in skip.skip_message
        result = dg.materialize(ASSETS[:1], resources=resources_for(storage), instance=instance)
        logs = [e.user_message for e in instance.all_logs(result.run_id) if e.level >= logging.WARNING]
    raw = result.asset_materializations_for_node("raw_ratings")[0].metadata
    assert raw["source"].value == str(tiny_export.resolve()) and raw["dagster/row_count"].value == 4_000
    assert any("outside the drop folder: not followed" in line for line in logs)


def test_cleaning_may_narrow_the_rating_scale_but_not_widen_it(tiny_export, data_dir):
    """The models are trained and served on core/rating_scale.py's scale: cleaning to 1-10 would let ratings
    through that training clamps to 5, so it is refused with one line; a narrower range is kept."""
    storage = RecsysStorage(export_path=str(tiny_export), data_dir=str(data_dir))
    wide = dg.RunConfig(ops={"cleaned_ratings": ingest.CleanedRatingsConfig(rating_max=10.0)})
    result = dg.materialize(ASSETS[:2], resources=resources_for(storage), run_config=wide, raise_on_error=False)
    assert "must lie within the rating scale 0.5-5" in _failure_without_retries(result)
    narrow = dg.RunConfig(
        ops={"cleaned_ratings": ingest.CleanedRatingsConfig(rating_min=1.0, max_rejected_fraction=1.0)}
    )
    result = dg.materialize(ASSETS[:2], resources=resources_for(storage), run_config=narrow)
    cleaned = result.asset_materializations_for_node("cleaned_ratings")[0].metadata
    assert cleaned["quarantined_rating_off_scale"].value > 0  # the 0.5-star ratings
