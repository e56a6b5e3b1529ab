"""The real command line: dagster asset materialize, definitions validate and recsys, in subprocesses."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .conftest import REPO_ROOT, make_dagster_home
from .test_e2e_dg import MATERIALIZE_SUPERSEDED, _warning_lines

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent


def _env(tmp_path, export, data_dir):
    env = dict(os.environ)
    home = make_dagster_home(tmp_path / "dagster_home")
    env.update(
        DAGSTER_HOME=str(home),
        RECSYS_EXPORT_PATH=str(export),
        RECSYS_DATA_DIR=str(data_dir),
        RECSYS_DEVICE="cpu",
        MPLBACKEND="Agg",
    )
    return env


def _run(args, env, timeout=600):
    proc = subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc.stdout + proc.stderr


def _materialized(home: Path) -> set[str]:
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home)
    with dg.DagsterInstance.get() as instance:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("recommendation_model")), limit=10
        )
        return records.records


def test_cli_materialize_all_then_validate(tmp_path, tiny_export):
    data_dir = tmp_path / "data"
    env = _env(tmp_path, tiny_export, data_dir)
    config = {"ops": {"recommendation_model": {"config": {"epochs": 5}}}}
    out = _run(
        [
            str(BIN / "dagster"),
            "asset",
            "materialize",
            "--select",
            "*",
            "-m",
            "recsys_assets.definitions",
            "--config-json",
            json.dumps(config),
        ],
        env,
    )
    assert "RUN_SUCCESS" in out and "Epoch 5/5:" in out
    # the deployment docs' command: the definitions and every step process load without a warning
    assert _warning_lines(out, allowed=(MATERIALIZE_SUPERSEDED,)) == []
    payload = torch.load(data_dir / "recommendation_model.pth", weights_only=True)
    assert payload["config"]["epochs"] == 5 and len(payload["history"]) == 5
    assert (data_dir / "training_loss.png").exists()
    # the run and its lineage persist in DAGSTER_HOME (sqlite)
    assert len(_materialized(Path(env["DAGSTER_HOME"]))) == 1

    out = _run([str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"], env)
    assert "Validation successful" in out

    assert (data_dir / "ranking_model.pth").exists() and (data_dir / "model_evaluation.png").exists()
    out = _run(
        [
            str(BIN / "recsys"),
            "recommend",
            "--user",
            "1",
            "-k",
            "3",
            "--model",
            str(data_dir / "recommendation_model.pth"),
        ],
        env,
    )
    assert out.count("\n") >= 4 and "movie_id" in out and "because you rated" in out


def test_cli_fails_clearly_on_a_missing_export(tmp_path):
    env = _env(tmp_path, tmp_path / "missing.csv", tmp_path / "data")
    proc = subprocess.run(
        [str(BIN / "dagster"), "asset", "materialize", "--select", "raw_ratings", "-m", "recsys_assets.definitions"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "ratings export not found" in proc.stdout + proc.stderr


def test_cli_checkpoint_file_cannot_touch_another_file(tmp_path, tiny_export):
    """raw_ratings' checkpoint_file set from the command line to the model file: refused, the file stays."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    model = data_dir / "recommendation_model.pth"
    model.write_bytes(b"the published model")
    (data_dir / "recommendation_model.pth.parts").mkdir()
    env = _env(tmp_path, tiny_export, data_dir)
    for target in ("../recommendation_model.pth", str(model)):
        config = {"ops": {"raw_ratings": {"config": {"checkpoint_file": target}}}}
        proc = subprocess.run(
            [str(BIN / "dg"), "launch", "--assets", "raw_ratings", "--config-json", json.dumps(config)],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode != 0
        assert "checkpoint_file" in proc.stdout + proc.stderr
        assert model.read_bytes() == b"the published model"
        assert (data_dir / "recommendation_model.pth.parts").is_dir()
