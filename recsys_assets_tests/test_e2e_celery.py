"""The Celery profile for real: two Celery workers, a Redis broker, PostgreSQL and an S3 endpoint.

Everything runs on loopback and is started here, in a temp folder: Debian's ``redis-server`` (broker and
result backend), Debian's PostgreSQL with the shipped ``deploy/celery/dagster.yaml``, moto's standalone
S3 server as the object store (``RECSYS_DATA_DIR=s3://...``, credentials and endpoint from the
environment, as the README tells a user), and two workers started with ``dagster-celery worker start``:
one on the default queue (``dagster``), one on ``gpu`` (the training step's queue). Each worker and the
submitter have their own ``DAGSTER_HOME`` and ``RECSYS_WORK_DIR``; nothing shares a local data folder.

The chain runs with ``RECSYS_EXECUTOR=celery`` through ``dagster asset materialize``; then the training
worker and the ingest worker are each killed with SIGKILL mid-step, and a fresh worker resumes the step
from the checkpoint mirrored in the bucket, to the same result as the uninterrupted run.
"""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from recsys_assets.core.sample_data import SampleSpec, write_sample_export

from .celery_deployment import (
    BUCKET,
    DATA_URL,
    DEFAULT_QUEUE,
    GPU_QUEUE,
    PREFIX,
    Deployment,
    celery_deployment,
    kill_group,
)
from .conftest import ASSET_KEYS, REPO_ROOT
from .servers import pg_query, s3_keys

pytestmark = pytest.mark.e2e
# large enough that a load and a training last a few seconds (a checkpoint mirrored after every 1,000 rows
# and every epoch), small enough for the whole module to take about three minutes on two cores
SPEC = SampleSpec(n_ratings=60_000, n_users=600, n_movies=1_500, seed=11)
OP_CONFIG = {
    "raw_ratings": {"checkpoint_interval": 1_000, "mirror_interval": 0},
    "recommendation_model": {"epochs": 40, "patience": 40, "embedding_dim": 16, "batch_size": 512},
    "ranking_model": {"factors": [16], "regularization": [100.0], "iterations": 5},
}
TABLES = ["raw_ratings", "cleaned_ratings", "user_movie_mappings", "train_ratings", "val_ratings"]
FILES = ["recommendation_model.pth", "ranking_model.pth", "training_loss.png", "model_evaluation.png"]
ARTIFACT_SUFFIXES = (".parquet", ".pth", ".png")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    pytest.importorskip("dagster_celery", reason="dagster-celery is not installed (pip install -e '.[celery]')")
    pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("celery")
    export = write_sample_export(root / "exports" / "ratings_export.csv", SPEC)  # a mounted, read-only volume
    with celery_deployment(root, export) as deployment, pytest.MonkeyPatch.context() as mp:
        for name, value in {**deployment.pg, **deployment.s3}.items():  # this process reads the instance and bucket
            mp.setenv(name, value)
        yield deployment


def _finish(proc: subprocess.Popen, log: Path, timeout: float = 300) -> str:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError(f"materialize did not finish in {timeout:.0f}s\n{log.read_text()[-4000:]}") from None
    text = log.read_text()
    assert proc.returncode == 0, text[-4000:]
    return text


def _abandon(deployment: Deployment, proc: subprocess.Popen) -> None:
    """Stop a submitter whose step's worker was killed, and mark its run failed as the run monitor would,
    which frees the pool slot its step held."""
    kill_group(proc)
    with deployment.instance() as instance:
        run = instance.get_runs(limit=1)[0]
        if not run.is_finished:
            instance.report_run_failed(run)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)


def _metadata(deployment: Deployment, asset: str) -> dict:
    import dagster as dg

    with deployment.instance() as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(asset))
        assert event is not None and event.asset_materialization is not None
        return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def _model_state(path: str):
    import torch

    from recsys_assets.core.artifact_store import ArtifactStore

    with ArtifactStore(DATA_URL).read(path) as local:
        return torch.load(local, weights_only=True)["model_state_dict"]


def _table(name: str):
    import pandas as pd

    from recsys_assets.core.artifact_store import ArtifactStore

    with ArtifactStore(DATA_URL).read(f"tables/{name}.parquet") as local:
        return pd.read_parquet(local)


def _local_artifacts(deployment: Deployment) -> list[Path]:
    """Tables, models and plots written since the deployment started in any local folder of it, or in the
    checkout's data folder (a working folder's in-progress checkpoints excepted: that is what it is for,
    and a killed worker leaves its own behind; files in data/ from earlier local runs are not its)."""
    folders = [*deployment.work_dirs, *deployment.root.glob("home-*"), REPO_ROOT / "data"]
    found = [p for folder in folders for p in folder.rglob("*") if p.suffix in ARTIFACT_SUFFIXES]
    return [p for p in found if "checkpoints" not in p.parts and p.stat().st_mtime >= deployment.started]


def _wait_for_key(deployment: Deployment, key: str, proc: subprocess.Popen, log: Path) -> None:
    """Wait until ``key`` is in the bucket (a checkpoint mirrored mid-step)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if f"{PREFIX}/{key}" in s3_keys(deployment.s3, BUCKET, f"{PREFIX}/checkpoints/"):
            return
        time.sleep(0.05)
    raise AssertionError(f"{key} never appeared in the bucket while the step ran\n{log.read_text()[-4000:]}")


def test_the_chain_runs_on_celery_workers_with_s3_artifacts_and_postgres(deployment):
    default_worker = deployment.start_worker(DEFAULT_QUEUE)
    gpu_worker = deployment.start_worker(GPU_QUEUE)
    log = deployment.root / "materialize-all.log"
    submitter = deployment.materialize(["*"], log, OP_CONFIG)
    _finish(submitter, log)

    assert pg_query(deployment.pg, "SELECT status FROM runs") == [("SUCCESS",)]
    with deployment.instance() as instance:
        (run,) = instance.get_runs(limit=1)
        events = [e.dagster_event for e in instance.all_logs(run.run_id) if e.dagster_event is not None]
    starts = {e.step_key: e.pid for e in events if e.event_type_value == "STEP_START"}
    assert {key.split(".")[0] for key in starts} >= {"raw_ratings", "recommendation_model", "ranking_model"}
    worker_of = {  # the worker's own report, as the Celery task starts
        e.step_key: e.event_specific_data.metadata["Celery worker"].value
        for e in events
        if e.event_type_value == "ENGINE_EVENT" and e.message and e.message.endswith("in celery worker")
    }
    queue_of = {  # the submitter's report, as it sends the task
        e.step_key: e.message.rsplit('to queue "', 1)[1].rstrip('".')
        for e in events
        if e.event_type_value == "ENGINE_EVENT" and e.message and e.message.startswith("Submitting celery task")
    }
    assert queue_of["recommendation_model"] == GPU_QUEUE and queue_of["raw_ratings"] == DEFAULT_QUEUE
    workers = {DEFAULT_QUEUE: ("default", default_worker), GPU_QUEUE: ("gpu", gpu_worker)}
    host = socket.gethostname()
    for step, pid in starts.items():  # every step ran in its queue's worker process, none in the submitter
        name, worker = workers[queue_of[step]]
        assert pid != submitter.pid
        assert os.getpgid(pid) == worker.pid, f"{step} ran in pid {pid}, not in the {name} worker"
        assert worker_of[step] == f"{name}@{host}"

    keys = set(s3_keys(deployment.s3, BUCKET, f"{PREFIX}/"))
    expected = {f"{PREFIX}/tables/{t}.parquet" for t in TABLES} | {f"{PREFIX}/{f}" for f in FILES}
    assert expected <= keys, sorted(keys)
    assert not [k for k in keys if k.startswith(f"{PREFIX}/checkpoints/")], "finished steps remove their mirror"
    assert not _local_artifacts(deployment), "every artifact goes to the bucket, none to a local folder"

    materialized = pg_query(
        deployment.pg, "SELECT asset_key FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
    )
    assert {f'["{name}"]' for name in ASSET_KEYS} == {row[0] for row in materialized}
    checks = pg_query(
        deployment.pg, "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_CHECK_EVALUATION'"
    )
    assert checks[0][0] >= 10

    from recsys_assets import Recommender

    rec = Recommender.load(f"{DATA_URL}/recommendation_model.pth")  # + the ranking model beside it, from the bucket
    assert rec.ranker is not None
    assert len(rec.recommend(int(rec.users.ids[0]), k=5)) == 5
    deployment.baseline["model"] = _model_state("recommendation_model.pth")
    deployment.baseline["raw_ratings"] = _table("raw_ratings")


def test_a_killed_training_worker_resumes_on_a_fresh_worker_from_the_mirrored_checkpoint(deployment):
    if "model" not in deployment.baseline:
        pytest.skip("needs the uninterrupted run of the first test")
    from recsys_assets.core.artifact_store import ArtifactStore

    # The baseline trained with nothing published. A candidate never trains on a published model's held-back
    # ratings (core/heldback.py), so for the same training plan the live rating model goes first: a first
    # training, killed and resumed.
    store = ArtifactStore(DATA_URL)
    store.remove("live.json")  # the live pointer (core/release/live.py) would still name the published version
    store.remove("recommendation_model.pth")
    log = deployment.root / "materialize-model-killed.log"
    submitter = deployment.materialize(["recommendation_model"], log, OP_CONFIG)
    _wait_for_key(deployment, "checkpoints/recommendation_model.training.pt", submitter, log)
    deployment.kill_worker("gpu")  # mid-training, after at least one mirrored epoch
    _abandon(deployment, submitter)

    deployment.start_worker(GPU_QUEUE)  # a restarted gpu worker with a fresh working folder
    log = deployment.root / "materialize-model-resumed.log"
    _finish(deployment.materialize(["recommendation_model"], log, OP_CONFIG), log)
    metadata = _metadata(deployment, "recommendation_model")
    assert metadata["resumed_from_epoch"] > 0
    assert metadata["published"] is True
    import torch

    resumed, baseline = _model_state("recommendation_model.pth"), deployment.baseline["model"]
    assert resumed.keys() == baseline.keys()
    assert all(torch.equal(resumed[k], baseline[k]) for k in baseline), "the resumed model equals the uninterrupted one"


def test_a_killed_ingest_worker_resumes_on_a_fresh_worker_from_the_mirrored_checkpoint(deployment):
    if "raw_ratings" not in deployment.baseline:
        pytest.skip("needs the uninterrupted run of the first test")
    log = deployment.root / "materialize-raw-killed.log"
    submitter = deployment.materialize(["raw_ratings"], log, OP_CONFIG)
    _wait_for_key(deployment, "checkpoints/raw_ratings.checkpoint.json", submitter, log)
    deployment.kill_worker("default")  # mid-load, after at least one mirrored checkpoint
    _abandon(deployment, submitter)

    deployment.start_worker(DEFAULT_QUEUE)
    log = deployment.root / "materialize-raw-resumed.log"
    _finish(deployment.materialize(["raw_ratings"], log, OP_CONFIG), log)
    metadata = _metadata(deployment, "raw_ratings")
    assert metadata["resumed_rows"] > 0
    assert metadata["resumed_rows"] < SPEC.n_ratings
    import pandas as pd

    pd.testing.assert_frame_equal(_table("raw_ratings"), deployment.baseline["raw_ratings"])
    assert not _local_artifacts(deployment)
