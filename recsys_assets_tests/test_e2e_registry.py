"""The model registry as a user meets it: `recsys models` and `recsys rollback` in real processes, on real model
files, with a damaged JSON, a tampered version, a held lock and a full disk."""

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from recsys_assets.core.artifact_store import ArtifactStore
from recsys_assets.core.atomic import atomic_torch_save
from recsys_assets.core.rating.model_file import load_model_file
from recsys_assets.core.release.candidate import Candidate
from recsys_assets.core.release.history import ModelHistory, publish_lock
from recsys_assets.core.release.registry import PublishError
from recsys_assets.core.release.registry import publish as release

from .conftest import REPO_ROOT
from .model_files import hand_set_model_file

pytestmark = pytest.mark.e2e


def _recsys(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RECSYS_WORK_DIR": ""}
    command = [sys.executable, "-m", "recsys_assets.cli", *args]
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)


def _one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def _registry(tmp_path: Path, data: Path, versions: int = 3) -> list[bytes]:
    """``versions`` real rating model files published through the history; returns their bytes."""
    history = ModelHistory(ArtifactStore(data), "recommendation_model.pth", validate=load_model_file)
    published = []
    for k in range(versions):
        folder = tmp_path / f"build{k}"
        folder.mkdir()
        path = hand_set_model_file(folder)
        model = torch.load(path, weights_only=True)
        model["metrics"] = {"val_rmse": 0.9 - k / 100}  # a different file per version
        atomic_torch_save(model, path)
        payload = path.read_bytes()
        record = {"metrics": {"val_rmse": 0.9 - k / 100}, "data": {"n_users": 3, "n_ratings": 4 + k}}
        saver = lambda target, source=path: target.write_bytes(source.read_bytes())  # noqa: E731
        release(history.store, Candidate(history.name, saver, load_model_file, record), True, keep=5, work_folder=data)
        published.append(payload)
        assert hashlib.sha256(payload).hexdigest() == history.versions()[0].record["sha256"]
    return published


def _live(data: Path) -> bytes:
    return (data / "recommendation_model.pth").read_bytes()


def test_models_and_rollback_name_a_damaged_record_and_work_on_intact_versions(tmp_path):
    data = tmp_path / "data"
    files = _registry(tmp_path, data)
    folder = data / "models" / "recommendation_model"
    (folder / "v0002.json").write_text('{"version": "v0002", "sha2')  # cut short
    listing = _recsys("models", "--data-dir", str(data))
    assert listing.returncode == 0, listing.stderr
    assert "damaged:" in listing.stdout and "v0002.json is damaged" in listing.stdout
    assert "*v0003" in listing.stdout and " v0001" in listing.stdout
    for spelling in ("v1", "1", "v0001"):
        proc = _recsys("rollback", spelling, "--data-dir", str(data))
        assert proc.returncode == 0 and "to v0001" in proc.stdout, proc.stderr
        assert _live(data) == files[0]
    _one_line_error(_recsys("rollback", "v2", "--data-dir", str(data)), "v0002.json is damaged")
    _one_line_error(_recsys("rollback", "newest", "--data-dir", str(data)), "not a version")
    assert _live(data) == files[0]


def test_rollback_verifies_the_sha256_and_the_whole_file_before_restoring(tmp_path):
    data = tmp_path / "data"
    files = _registry(tmp_path, data)
    folder = data / "models" / "recommendation_model"
    tampered = bytearray((folder / "v0001.pth").read_bytes())
    tampered[-40] ^= 0xFF
    (folder / "v0001.pth").write_bytes(bytes(tampered))
    _one_line_error(_recsys("rollback", "v1", "--data-dir", str(data)), "does not match the sha256")
    # a file whose record was rewritten to match it, but which is no model: the full validation refuses it
    (folder / "v0002.pth").write_bytes(b"not a model at all")
    record = json.loads((folder / "v0002.json").read_text())
    record["sha256"] = hashlib.sha256(b"not a model at all").hexdigest()
    (folder / "v0002.json").write_text(json.dumps(record))
    _one_line_error(_recsys("rollback", "--data-dir", str(data)), "fails validation", "not restored")
    assert _live(data) == files[2]


def test_rollback_takes_the_publish_lock(tmp_path):
    data = tmp_path / "data"
    files = _registry(tmp_path, data)
    with publish_lock(data):  # a publish in progress
        _one_line_error(_recsys("rollback", "--data-dir", str(data)), "being written by another run")
    assert _live(data) == files[2]
    assert _recsys("rollback", "--data-dir", str(data)).returncode == 0
    assert _live(data) == files[1]


@contextlib.contextmanager
def _small_disk(folder: Path, size: str):
    folder.mkdir(parents=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {proc.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def _fill(folder: Path) -> None:
    with contextlib.suppress(OSError), open(folder / "filler", "wb") as f:
        while True:
            f.write(b"\0" * 4096)
            f.flush()


def test_a_full_disk_leaves_the_live_model_and_says_so_in_one_line(tmp_path):
    with _small_disk(tmp_path / "data", "2m") as data:
        files = _registry(tmp_path, data, versions=2)
        _fill(data)
        _one_line_error(_recsys("rollback", "--data-dir", str(data)), "No space left on device")
        assert _live(data) == files[1]
        # a publish on the full disk: the version cannot be recorded, so the live file never switches
        build = tmp_path / "build_new"
        build.mkdir()
        new = hand_set_model_file(build)
        candidate = Candidate(
            "recommendation_model.pth", lambda path: Path(path).write_bytes(new.read_bytes()), load_model_file, {}
        )
        with pytest.raises(PublishError, match="No space left on device.*the published model is unchanged"):
            release(ArtifactStore(data), candidate, True, keep=5, work_folder=tmp_path / "work")
        assert _live(data) == files[1]
        assert [v.name for v in ModelHistory(ArtifactStore(data), "recommendation_model.pth").versions()] == [
            "v0002",
            "v0001",
        ]
