"""The real command line: dagster asset materialize, definitions validate and recsys, in subprocesses."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .conftest import REPO_ROOT, make_dagster_home, ml_small_ratings

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


def test_cli_on_movielens_small_beats_the_baseline(tmp_path):
    """The acceptance run: every asset on ml-latest-small, then Recommender predicts and ranks."""
    export = ml_small_ratings()
    data_dir = tmp_path / "data"
    env = _env(tmp_path, export, data_dir)
    out = _run([str(BIN / "dagster"), "asset", "materialize", "--select", "*", "-m", "recsys_assets.definitions"], env)
    assert "RUN_SUCCESS" in out
    from recsys_assets import Recommender

    rec = Recommender.load(data_dir / "recommendation_model.pth")
    metrics = rec.info["metrics"]
    assert metrics["val_rmse"] < metrics["global_mean_rmse"] and metrics["val_rmse"] <= 0.855
    pred = rec.predict([1, 1], [1, 3])
    assert ((pred >= 0.5) & (pred <= 5.0)).all()
    top = rec.recommend(1, k=10)
    assert len(top) == 10 and top.attrs["by"] == "ranking"
    # ranking: the shipped ranker reaches the bar and beats most popular by 1.5x; the rating
    # model still beats a random ranking
    import pandas as pd

    evaluation = pd.read_parquet(data_dir / "tables" / "model_evaluation.parquet").set_index("ranker")
    ndcg = evaluation["ndcg_at_10"]
    assert ndcg["ranking model"] >= 0.29
    assert ndcg["ranking model"] >= 1.5 * ndcg["most popular"]
    n_movies, relevant_per_user = len(rec.movies), 5
    random_ndcg = 10 * relevant_per_user / n_movies  # generous upper estimate for a random top-10
    assert ndcg["rating model (MF)"] > random_ndcg
    recs = pd.read_parquet(data_dir / "tables" / "user_recommendations.parquet")
    assert recs["user_id"].nunique() == 610
    # every reason names a movie the user rated 4 or more; a user with no such rating (one here) gets none
    ratings = pd.read_csv(export)
    liked = set(zip(ratings["userId"][ratings["rating"] >= 4], ratings["movieId"][ratings["rating"] >= 4], strict=True))
    named = recs["because_movie_id"] >= 0
    assert recs["reason"][named].str.startswith("because you rated").all() and (recs["reason"][~named] == "").all()
    assert all((u, m) in liked for u, m in zip(recs["user_id"][named], recs["because_movie_id"][named], strict=True))
    has_liked = recs["user_id"].isin({u for u, _ in liked})
    assert named[has_liked].all() and not named[~has_liked].any() and (~has_liked).sum() == 10
    # "Troll 2"-style picks are gone: the recommended movies are ones many people rated
    counts = rec.ranker.seen.movie_counts()[rec.ranker.movies.encode(recs["movie_id"])]
    assert float(pd.Series(counts).median()) >= 30
    assert recs["movie_id"].value_counts().iloc[0] < 0.5 * 610  # no one film in every user's list
