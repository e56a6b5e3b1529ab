"""The Kubernetes profile, checked offline: ``deploy/k8s/values.yaml`` (Dagster's Helm chart) and the
``Dockerfile`` against the code they deploy. No cluster, no Docker and no chart download: the chart's
``values.schema.json`` ships in no Python package, so the structure is checked here by key, and every
name the files share with the code (module, settings, secrets, node labels, torch range) by value.
"""

import re
import tomllib

import yaml
from packaging.specifiers import SpecifierSet

from recsys_assets import settings
from recsys_assets.defs.executors import K8S_EXECUTOR_CONFIG, TRAINING_OP_TAGS

from .conftest import REPO_ROOT

VALUES = yaml.safe_load((REPO_ROOT / "deploy" / "k8s" / "values.yaml").read_text())
DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
(DEPLOYMENT,) = VALUES["dagster-user-deployments"]["deployments"]
LAUNCHER = VALUES["runLauncher"]["config"]["k8sRunLauncher"]
SETTING_NAMES = {s.name for s in settings.SETTINGS}


def _env_names() -> set[str]:
    """Every variable the values set: the code location's env and the run launcher's envVars."""
    names = {item["name"] for item in DEPLOYMENT["env"]}
    return names | {item.split("=", 1)[0] for item in LAUNCHER["envVars"]}


def test_values_have_the_charts_structure():
    assert VALUES["dagster-user-deployments"]["enabled"] is True
    assert VALUES["runLauncher"]["type"] == "K8sRunLauncher"
    assert VALUES["postgresql"]["enabled"] is True and VALUES["postgresql"]["postgresqlDatabase"]
    assert set(DEPLOYMENT) >= {"name", "image", "dagsterApiGrpcArgs", "port"}
    assert set(DEPLOYMENT["image"]) == {"repository", "tag", "pullPolicy"}
    assert all(set(item) == {"name", "value"} for item in DEPLOYMENT["env"])  # the chart's list form
    assert all(set(item) == {"name"} for item in DEPLOYMENT["envSecrets"] + LAUNCHER["envSecrets"])
    assert all(isinstance(item, str) for item in LAUNCHER["envVars"])
    assert set(LAUNCHER["runK8sConfig"]) <= {
        "containerConfig",
        "podSpecConfig",
        "podTemplateSpecMetadata",
        "jobSpecConfig",
        "jobMetadata",
    }


def test_the_code_location_module_is_the_one_the_image_serves_and_the_project_names():
    module = PYPROJECT["tool"]["dagster"]["module_name"]
    args = DEPLOYMENT["dagsterApiGrpcArgs"]
    assert args[args.index("--module-name") + 1] == module == "recsys_assets.definitions"
    cmd = yaml.safe_load(re.search(r"^CMD (.+)$", DOCKERFILE, re.M).group(1))  # the JSON form of CMD
    assert cmd[:3] == ["dagster", "api", "grpc"]
    assert cmd[cmd.index("--module-name") + 1] == module
    assert str(DEPLOYMENT["port"]) == cmd[cmd.index("--port") + 1]
    assert re.search(rf"^EXPOSE {DEPLOYMENT['port']}$", DOCKERFILE, re.M)


def test_every_recsys_variable_set_is_a_declared_setting_and_the_executor_finds_its_inputs():
    names = _env_names()
    assert {n for n in names if n.startswith("RECSYS_")} <= SETTING_NAMES
    values = {item["name"]: item["value"] for item in DEPLOYMENT["env"]}
    assert values["RECSYS_EXECUTOR"] == "k8s"
    assert values["RECSYS_DATA_DIR"].startswith("s3://"), "steps on different nodes share an object store"
    assert "RECSYS_EXECUTOR=k8s" in LAUNCHER["envVars"]
    config = K8S_EXECUTOR_CONFIG
    # what k8s_job_executor reads from the run pod's environment is set there
    env_inputs = {v["env"] for v in config.values() if isinstance(v, dict) and "env" in v}
    assert env_inputs <= names, env_inputs - names
    assert set(config["env_vars"]) <= names  # passed on to the step pods
    # the secrets the executor mounts in step pods are the ones the values mount in the run pods
    secrets = {item["name"] for item in LAUNCHER["envSecrets"]}
    assert set(config["env_secrets"]) == secrets == {item["name"] for item in DEPLOYMENT["envSecrets"]}


def test_the_gpu_node_selector_matches_the_training_steps_tags():
    pod_spec = TRAINING_OP_TAGS["dagster-k8s/config"]["pod_spec_config"]
    ((label, gpu_value),) = pod_spec["node_selector"].items()
    assert gpu_value == "gpu"
    cpu_selector = LAUNCHER["runK8sConfig"]["podSpecConfig"]["nodeSelector"]
    # the same label: the training tag overrides the run config's value, so training lands on GPU nodes and
    # every other step (which inherits runK8sConfig) on CPU nodes
    assert set(cpu_selector) == {label} and cpu_selector[label] != gpu_value
    assert DEPLOYMENT["nodeSelector"] == cpu_selector
    assert f"{label}={gpu_value}" in (REPO_ROOT / "deploy" / "k8s" / "values.yaml").read_text()
    assert {t["key"] for t in pod_spec["tolerations"]} == {"nvidia.com/gpu"}


def test_the_dockerfile_builds_a_cpu_and_a_cuda_variant_within_the_projects_torch_range():
    assert re.search(r"^ARG TORCH_VARIANT=cpu$", DOCKERFILE, re.M)
    version = re.search(r"^ARG TORCH_VERSION=(\S+)$", DOCKERFILE, re.M).group(1)
    (torch_req,) = [d for d in PYPROJECT["project"]["dependencies"] if d.startswith("torch")]
    assert version in SpecifierSet(torch_req.removeprefix("torch"))
    assert "--index-url https://download.pytorch.org/whl/cpu" in DOCKERFILE
    cuda_line = next(line for line in DOCKERFILE.splitlines() if line.strip().startswith("cuda)"))
    assert "--index-url" not in cuda_line, "the CUDA variant installs PyPI's default (CUDA) build"
    extras = re.search(r"^ARG EXTRAS=([a-z0-9,-]+)$", DOCKERFILE, re.M).group(1).split(",")
    assert "os.environ['EXTRAS']" in DOCKERFILE and "pip install --no-cache-dir --no-deps ." in DOCKERFILE
    assert {"postgres", "k8s", "object-store"} <= set(extras) <= set(PYPROJECT["project"]["optional-dependencies"])


CHART_DEFAULT_PASSWORD = "test"  # the Dagster chart's postgresql.postgresqlPassword


def _postgres_password_sources(values: dict) -> dict[str, str]:
    """Where each reader of the PostgreSQL password takes it from, by the Dagster chart's rules and defaults:
    the Dagster pods read ``global.postgresqlSecretName``, which the chart itself generates holding
    ``postgresql.postgresqlPassword`` unless ``generatePostgresqlPasswordSecret`` is false; the bundled
    PostgreSQL (bitnami subchart) reads ``postgresql.existingSecret``, else ``postgresqlPassword`` (random
    when empty). ``"literal:<password>"``: a password the values hold; ``"secret:<name>"``: a secret made
    outside the chart."""
    pg = {"enabled": True, "postgresqlPassword": CHART_DEFAULT_PASSWORD, **values.get("postgresql", {})}
    literal = f"literal:{pg['postgresqlPassword']}" if pg["postgresqlPassword"] else "random"
    secret = values.get("global", {}).get("postgresqlSecretName", "dagster-postgresql-secret")
    sources = {"dagster": literal if values.get("generatePostgresqlPasswordSecret", True) else f"secret:{secret}"}
    if pg["enabled"]:
        sources["bundled postgresql"] = f"secret:{pg['existingSecret']}" if pg.get("existingSecret") else literal
    return sources


def test_the_charts_default_postgres_password_can_never_be_used():
    """The values used to set only the user and database, so the chart's password ('test') was the one used."""
    default = f"literal:{CHART_DEFAULT_PASSWORD}"
    assert set(_postgres_password_sources({}).values()) == {default}  # the chart alone
    before = {"postgresql": {"enabled": True, "postgresqlUsername": "dagster", "postgresqlDatabase": "dagster"}}
    assert default in _postgres_password_sources(before).values()  # what this file used to say
    sources = _postgres_password_sources(VALUES)
    assert set(sources) == {"dagster", "bundled postgresql"}
    assert set(sources.values()) == {"secret:recsys-postgres"}, sources  # one secret, made before installing
    assert {"recsys-postgres"} <= {item["name"] for item in DEPLOYMENT["envSecrets"]}
    assert VALUES["postgresql"]["postgresqlPassword"] == "", "no password in this file, not even the chart's"
    text = (REPO_ROOT / "deploy" / "k8s" / "values.yaml").read_text()
    assert "--from-literal=postgresql-password=" in text  # the key the chart reads is the one the header creates
