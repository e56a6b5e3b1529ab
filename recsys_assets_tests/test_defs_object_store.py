"""The asset chain with RECSYS_DATA_DIR on an fsspec filesystem other than the local disk.

fsspec's in-memory filesystem stands in for S3/GCS: the same ArtifactStore code path (upload to a
staging key, then move into place; reads through a local copy), in this process, so the runs use
``dg.materialize`` (in-process).
"""

import uuid

import dagster as dg
import fsspec
import pytest
import torch

from recsys_assets import Recommender
from recsys_assets.core.artifact_store import ArtifactStore
from recsys_assets.definitions import ASSETS
from recsys_assets.defs import ingest, training
from recsys_assets.defs.resources import DeviceResource, RecsysStorage, resources_for

TABLES = {
    "raw_ratings",
    "cleaned_ratings",
    "cleaned_ratings_quarantine",
    "user_movie_mappings",
    "train_ratings",
    "val_ratings",
    "user_recommendations",
    "model_evaluation",
}


@pytest.fixture
def root():
    url = f"memory://recsys-{uuid.uuid4().hex[:8]}/data"
    yield url
    memory = fsspec.filesystem("memory")
    if memory.exists(url):
        memory.rm(url.rsplit("/", 1)[0], recursive=True)


def _resources(export, root, work):
    return {
        **resources_for(
            RecsysStorage(export_path=str(export), data_dir=root, work_dir=str(work)), DeviceResource(device="cpu")
        ),
    }


def test_the_whole_chain_publishes_to_the_object_store(tiny_export, root, tmp_path):
    run_config = dg.RunConfig(ops={"recommendation_model": training.RecommendationModelConfig(epochs=6)})
    result = dg.materialize(ASSETS, resources=_resources(tiny_export, root, tmp_path / "work"), run_config=run_config)
    assert result.success
    store = ArtifactStore(root)
    names = set(store.listdir(""))
    assert {f"tables/{t}.parquet" for t in TABLES} <= names
    assert {
        "recommendation_model.pth",
        "ranking_model.pth",
        "training_loss.png",
        "rating_histogram.png",
        "model_evaluation.png",
    } <= names
    assert not [n for n in names if ".tmp" in n or n.startswith("checkpoints/")], (
        names
    )  # no staging keys, no stale checkpoints
    with store.read("recommendation_model.pth") as path:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    assert {"model_state_dict", "user_mapping", "movie_mapping", "optimizer_state_dict"} <= set(payload)
    model_md = next(
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("recommendation_model")
    )
    assert model_md["path"].value == f"{root}/recommendation_model.pth"
    assert not (tmp_path / "work" / "recommendation_model.pth").exists()  # published to the store only
    with store.read("recommendation_model.pth") as path, store.read("ranking_model.pth") as ranking_path:
        rec = Recommender.load(path, ranking_path=ranking_path)
    assert rec.ranker is not None and len(rec.recommend(int(rec.users.ids[0]), k=3)) == 3


def test_a_load_that_died_on_one_machine_resumes_on_another(tiny_export, root, tmp_path, monkeypatch):
    class DyingLoader(ingest.MovieDataLoader):
        def __init__(self, *args, on_checkpoint=None, **kwargs):
            def die_after_two_checkpoints(rows, done, total):
                on_checkpoint(rows, done, total)
                if rows >= 2_000:  # no retry on this machine: the next attempt runs elsewhere
                    raise dg.Failure("the pod was evicted", allow_retries=False)

            super().__init__(*args, on_checkpoint=die_after_two_checkpoints, **kwargs)

    run_config = dg.RunConfig(ops={"raw_ratings": ingest.RawRatingsConfig(checkpoint_interval=1_000)})
    monkeypatch.setattr(ingest, "MovieDataLoader", DyingLoader)
    first = dg.materialize(
        ASSETS[:1],
        resources=_resources(tiny_export, root, tmp_path / "machine_a"),
        run_config=run_config,
        raise_on_error=False,
    )
    assert not first.success
    mirrored = ArtifactStore(root).listdir("checkpoints")
    assert "raw_ratings.checkpoint.json" in mirrored and any(n.endswith(".arrow") for n in mirrored), mirrored

    monkeypatch.setattr(ingest, "MovieDataLoader", DyingLoader.__mro__[1])
    second = dg.materialize(
        ASSETS[:1], resources=_resources(tiny_export, root, tmp_path / "machine_b"), run_config=run_config
    )
    md = next(e.materialization.metadata for e in second.get_asset_materialization_events())
    assert md["resumed_rows"].value == 2_000 and md["dagster/row_count"].value == 4_000
    assert ArtifactStore(root).listdir("checkpoints") == []  # dropped once the table is published
