"""The checkpoint's files stay inside the checkpoint folder: a symbolic link planted among them is refused,
and nothing outside is written or deleted (hostile review, case 1)."""

import os

import pytest

from recsys_assets.core.ingest import CheckpointPathError, CheckpointStore, MovieDataLoader, no_retry_can_fix
from recsys_assets.core.sample_data import SampleSpec, write_sample_export

MANIFEST = "raw_ratings.checkpoint.json"


@pytest.fixture
def export(tmp_path):
    return write_sample_export(tmp_path / "ratings.csv", SampleSpec(n_ratings=2_000, n_users=50, n_movies=80, seed=3))


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "checkpoints"
    path.mkdir()
    return path


def test_a_parts_folder_linked_out_of_the_checkpoint_folder_is_refused_and_nothing_outside_is_deleted(
    tmp_path, export, folder
):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    parts = folder / f"{MANIFEST}.parts"
    parts.symlink_to(victim)
    manifest = folder / MANIFEST
    loader = MovieDataLoader(export, manifest, 100, 500)
    with pytest.raises(CheckpointPathError, match=r"\.parts is a symbolic link .*remove the link") as caught:
        loader.load()
    message = str(caught.value)
    assert "\n" not in message and no_retry_can_fix(caught.value)  # one line, never retried
    for discard in (loader.discard_checkpoint, CheckpointStore(manifest).discard):
        with pytest.raises(CheckpointPathError):
            discard()
    assert os.listdir(victim) == ["precious.txt"] and (victim / "precious.txt").read_text() == "keep me"
    assert parts.is_symlink()  # left for the operator to look at, not followed
    parts.unlink()  # the link removed: the next ingest works
    again = MovieDataLoader(export, manifest, 100, 500)
    assert len(again.load()) == 2_000
    assert again.discard_checkpoint() and not (folder / f"{MANIFEST}.parts").exists()
    assert os.listdir(victim) == ["precious.txt"]


@pytest.mark.parametrize("name", [f"{MANIFEST}.hwm", f"{MANIFEST}.lock", f".{MANIFEST}.tmp", MANIFEST])
def test_a_checkpoint_file_linked_out_of_the_folder_is_neither_written_nor_deleted(tmp_path, export, folder, name):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (folder / name).symlink_to(victim)
    with pytest.raises(CheckpointPathError, match="is a symbolic link"):
        MovieDataLoader(export, folder / MANIFEST, 100, 500).load()
    with pytest.raises(CheckpointPathError):
        CheckpointStore(folder / MANIFEST).discard()
    assert victim.read_text() == "keep me"
    assert sorted(os.listdir(tmp_path)) == ["checkpoints", "ratings.csv", "victim.txt"]


def test_a_linked_part_file_is_never_read_and_the_load_starts_over(tmp_path, export, folder):
    manifest = folder / MANIFEST
    with pytest.raises(RuntimeError):
        MovieDataLoader(
            export, manifest, 100, 500, on_checkpoint=lambda *a: (_ for _ in ()).throw(RuntimeError())
        ).load()
    part = folder / f"{MANIFEST}.parts" / "part-000001.arrow"
    victim = tmp_path / "victim.arrow"
    part.rename(victim)
    part.symlink_to(victim)
    loader = MovieDataLoader(export, manifest, 100, 500)
    assert len(loader.load()) == 2_000
    assert loader.stats.resumed_rows == 0 and "symbolic link" in (loader.stats.restart_reason or "")
    assert victim.exists() and not part.is_symlink()


def test_a_hard_linked_high_water_mark_is_refused(tmp_path, export, folder):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    os.link(victim, folder / f"{MANIFEST}.hwm")
    with pytest.raises(CheckpointPathError, match="hard links"):
        MovieDataLoader(export, folder / MANIFEST, 100, 500).load()
    assert victim.read_text() == "keep me"
