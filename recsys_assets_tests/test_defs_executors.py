"""The cluster configurations load as a cluster would load them: executors, step tags and instance files."""

from pathlib import Path

import dagster as dg
import pytest
import yaml

from recsys_assets.definitions import build_definitions
from recsys_assets.defs.executors import TRAINING_OP_TAGS

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
PG_ENV = {
    "DAGSTER_PG_HOST": "db.internal",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "not-a-real-password",
    "DAGSTER_PG_DB": "dagster",
}


def _job(defs: dg.Definitions):
    return defs.resolve_job_def("retrain_model")


def test_the_in_process_executor_is_the_local_default(monkeypatch):
    monkeypatch.delenv("RECSYS_EXECUTOR", raising=False)
    assert _job(build_definitions()).executor_def.name == "in_process"
    assert _job(build_definitions("multiprocess")).executor_def.name == "multiprocess"


def test_an_unknown_executor_is_a_clear_error():
    with pytest.raises(ValueError, match="RECSYS_EXECUTOR must be one of multiprocess, in_process, k8s, celery"):
        build_definitions("spark")


@pytest.mark.parametrize(
    ("name", "module", "env"),
    [
        ("k8s", "dagster_k8s", {"DAGSTER_K8S_NAMESPACE": "recsys"}),
        (
            "celery",
            "dagster_celery",
            {"RECSYS_CELERY_BROKER": "redis://redis:6379/0", "RECSYS_CELERY_BACKEND": "redis://redis:6379/1"},
        ),
    ],
)
def test_cluster_executors_load_and_their_config_validates(name, module, env, monkeypatch):
    pytest.importorskip(module)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    defs = build_definitions(name)
    dg.Definitions.validate_loadable(defs)
    job = _job(defs)
    assert job.executor_def.name == f"recsys_{name}"
    # the executor's own config, env vars resolved and checked by its schema, as a run would
    executor_config = dg.validate_run_config(job, {})["execution"][f"recsys_{name}"]
    if name == "k8s":
        assert executor_config["job_namespace"] == "recsys"
        assert executor_config["step_k8s_config"]["container_config"]["resources"]["requests"]["memory"] == "4Gi"
    else:
        assert executor_config["broker"] == "redis://redis:6379/0"


def test_the_training_step_asks_a_cluster_for_a_gpu():
    pytest.importorskip("dagster_k8s")
    from dagster_k8s.job import get_user_defined_k8s_config

    node = _job(build_definitions("in_process")).graph.node_named("recommendation_model")
    assert node.definition.tags["dagster-celery/queue"] == "gpu"
    k8s = get_user_defined_k8s_config(node.definition.tags)  # how the k8s executor reads the step's tags
    assert k8s.container_config["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in k8s.pod_spec_config["tolerations"]
    assert TRAINING_OP_TAGS["dagster-k8s/config"]["container_config"]["env"] == [
        {"name": "RECSYS_DEVICE", "value": "cuda"}
    ]
    other = _job(build_definitions("in_process")).graph.node_named("cleaned_ratings")
    assert "dagster-k8s/config" not in other.definition.tags


@pytest.mark.parametrize("profile", ["postgres", "k8s", "celery"])
def test_instance_files_validate_and_keep_secrets_out(profile, monkeypatch):
    pytest.importorskip("dagster_postgres")
    from dagster._config import process_config, resolve_to_config_type
    from dagster._core.instance.config import dagster_instance_config

    for key, value in PG_ENV.items():
        monkeypatch.setenv(key, value)
    raw = yaml.safe_load((DEPLOY / profile / "dagster.yaml").read_text())
    db = raw["storage"]["postgres"]["postgres_db"]
    assert db["scheme"] == "postgresql+psycopg2"
    assert all(set(v) == {"env"} for k, v in db.items() if k != "scheme"), "credentials come from the environment"
    config, _ = dagster_instance_config(str(DEPLOY / profile))  # Dagster's own schema for dagster.yaml
    from dagster_postgres.utils import pg_config, pg_url_from_config

    storage = process_config(resolve_to_config_type(pg_config()), config["storage"]["postgres"])  # env resolved
    assert storage.success, storage.errors
    url = pg_url_from_config(storage.value)  # what dagster-postgres connects to
    assert url == "postgresql+psycopg2://dagster:not-a-real-password@db.internal:5432/dagster"
    if profile in ("k8s", "celery"):  # steps on many machines: the pools keep one ingest and one training at a time
        assert config["concurrency"]["pools"]["default_limit"] == 1
    if profile == "k8s":
        pytest.importorskip("dagster_k8s")
        from dagster_k8s import K8sRunLauncher

        monkeypatch.setenv("DAGSTER_K8S_NAMESPACE", "recsys")
        monkeypatch.setenv("RECSYS_IMAGE", "registry.example/recsys:1")
        launcher = raw["run_launcher"]
        assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
        checked = process_config(resolve_to_config_type(K8sRunLauncher.config_type()), launcher["config"])
        assert checked.success, checked.errors
        assert checked.value["job_namespace"] == "recsys" and checked.value["job_image"] == "registry.example/recsys:1"
