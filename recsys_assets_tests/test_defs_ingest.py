import dagster as dg
import pytest

from recsys_assets.core.ingest import CheckpointPathError, confined_checkpoint_path
from recsys_assets.definitions import ASSETS
from recsys_assets.defs import ingest
from recsys_assets.defs.resources import ParquetIOManager, RecsysStorage


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
