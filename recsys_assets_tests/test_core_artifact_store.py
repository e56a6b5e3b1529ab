"""ArtifactStore on a local folder, a file:// URL and an fsspec in-memory filesystem (a stand-in for S3)."""

import errno
import os
import uuid
from pathlib import Path

import fsspec
import pytest

from recsys_assets.core.artifact_store import ArtifactStore


@pytest.fixture(params=["local", "file_url", "memory"])
def store(request, tmp_path):
    if request.param == "local":
        yield ArtifactStore(tmp_path / "artifacts")
    elif request.param == "file_url":
        yield ArtifactStore(f"file://{tmp_path}/artifacts")
    else:
        root = f"memory://recsys-test-{uuid.uuid4().hex}"
        yield ArtifactStore(root)
        memory = fsspec.filesystem("memory")
        if memory.exists(root):
            memory.rm(root, recursive=True)


def _all_files(store: ArtifactStore) -> list[str]:
    return store.listdir("") if store.fs.exists(store.root) else []


def test_write_publishes_and_read_gives_it_back(store):
    with store.write("tables/a.parquet") as tmp:
        tmp.write_bytes(b"first")
    assert store.exists("tables/a.parquet") and store.size("tables/a.parquet") == 5
    with store.read("tables/a.parquet") as path:
        assert path.read_bytes() == b"first"
    assert store.read_bytes("tables/a.parquet") == b"first"
    assert _all_files(store) == ["tables/a.parquet"]  # no staging files left behind


def test_a_failed_write_keeps_the_previous_version(store):
    store.write_bytes("model.pth", b"good")
    with pytest.raises(RuntimeError, match="killed"):
        with store.write("model.pth") as tmp:
            tmp.write_bytes(b"half a mod")
            raise RuntimeError("killed mid-write")
    assert store.read_bytes("model.pth") == b"good"
    assert _all_files(store) == ["model.pth"]


def test_a_failed_upload_removes_its_staging_key(tmp_path):
    store = ArtifactStore(f"memory://recsys-test-{uuid.uuid4().hex}")
    store.write_bytes("model.pth", b"good")
    real_mv = store.fs.mv
    store.fs.mv = lambda *a, **k: (_ for _ in ()).throw(OSError("connection reset"))
    with pytest.raises(OSError, match="connection reset"):
        store.write_bytes("model.pth", b"new")
    store.fs.mv = real_mv
    assert store.read_bytes("model.pth") == b"good"
    assert _all_files(store) == ["model.pth"]


def test_missing_artifacts_and_escaping_names_are_clear_errors(store):
    with pytest.raises(FileNotFoundError, match="nothing.pth not found"):
        with store.read("nothing.pth"):
            pass
    with pytest.raises(ValueError, match="stay under the root"):
        store.path("../outside.pth")


def test_urls_name_the_backend(tmp_path):
    assert ArtifactStore(tmp_path).url("m.pth") == str(tmp_path / "m.pth")
    assert ArtifactStore(f"file://{tmp_path}").is_local
    mem = ArtifactStore("memory://bucket/recsys")
    assert not mem.is_local and mem.url("m.pth") == "memory://bucket/recsys/m.pth"
    with pytest.raises(ValueError, match="not a local folder"):
        mem.local_path("m.pth")


def test_push_dir_uploads_changes_only_and_manifests_last(store, tmp_path):
    work = tmp_path / "work"
    (work / "ckpt.json.parts").mkdir(parents=True)
    (work / "ckpt.json.parts" / "000000.arrow").write_bytes(b"part0")
    (work / "ckpt.json").write_text('{"parts": 1}')
    (work / "ckpt.json.lock").write_text("")
    (work / ".ckpt.json.123.tmp").write_text("partial")
    order = []
    real_put = store.put
    store.put = lambda local, name: (order.append(name), real_put(local, name))
    assert store.push_dir(work, "checkpoints") == 2
    assert order == [
        "checkpoints/ckpt.json.parts/000000.arrow",
        "checkpoints/ckpt.json",
    ]  # the manifest after its parts
    assert store.push_dir(work, "checkpoints") == 0  # nothing changed
    (work / "ckpt.json.parts" / "000001.arrow").write_bytes(b"part1")
    (work / "ckpt.json").write_text('{"parts": 2}')
    assert store.push_dir(work, "checkpoints") == 2

    secret = tmp_path / "secret.txt"  # links planted in the folder: never followed, never uploaded
    secret.write_text("not a checkpoint")
    (work / "linked.json").symlink_to(secret)
    (work / "linked.parts").symlink_to(tmp_path, target_is_directory=True)
    assert store.push_dir(work, "checkpoints") == 0

    elsewhere = tmp_path / "elsewhere"  # another machine, starting with an empty work folder
    assert store.pull_dir("checkpoints", elsewhere) == 3
    assert (elsewhere / "ckpt.json").read_text() == '{"parts": 2}'
    assert (elsewhere / "ckpt.json.parts" / "000001.arrow").read_bytes() == b"part1"
    store.remove("checkpoints")
    assert store.listdir("checkpoints") == []


def _copy_onto_a_full_disk(src, dst, **kwargs):
    """What ``shutil.copyfile`` raises on a full disk: half written, then ENOSPC naming the source first."""
    with open(dst, "wb") as f:
        f.write(b"\0" * 10)
    err = OSError(errno.ENOSPC, "No space left on device")
    err.filename, err.filename2 = str(src), str(dst)
    raise err


def test_a_full_disk_names_the_file_in_the_store_not_a_temporary_or_local_one(tmp_path, monkeypatch):
    from recsys_assets.core import artifact_store
    from recsys_assets.core.release.candidate import Candidate
    from recsys_assets.core.release.registry import PublishError
    from recsys_assets.core.release.registry import publish as release

    store = ArtifactStore(tmp_path / "data")
    store.write_bytes("ranking_model.pth", b"live")
    local = tmp_path / "build" / "ranking_model.pth"
    local.parent.mkdir()
    local.write_bytes(b"new model")
    monkeypatch.setattr(artifact_store.shutil, "copyfile", _copy_onto_a_full_disk)
    with pytest.raises(OSError) as caught:
        store.put(local, "ranking_model.pth")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(tmp_path / "data" / "ranking_model.pth")
    assert os.listdir(tmp_path / "data") == ["ranking_model.pth"]  # no temporary file left
    with pytest.raises(OSError) as caught, store.write("table.parquet"):
        raise OSError(errno.ENOSPC, "No space left on device")  # what os.write says: no file at all
    assert caught.value.filename == str(tmp_path / "data" / "table.parquet")
    # the publish path's one line names the data folder's file, not the local build in the temp folder
    candidate = Candidate("ranking_model.pth", lambda path: Path(path).write_bytes(b"new"), lambda path: None, {})
    with pytest.raises(PublishError) as published:
        release(store, candidate, True, keep=3, work_folder=tmp_path / "work")
    assert str(tmp_path / "data") in str(published.value) and "recsys-publish-" not in str(published.value)
    assert (tmp_path / "data" / "ranking_model.pth").read_bytes() == b"live"
