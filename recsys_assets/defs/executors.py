"""Where a run's steps execute: on this machine (the default) or on a cluster.

``RECSYS_EXECUTOR`` picks the executor when the definitions load:

* ``in_process`` (default): every step in the run's process, one after the other. Locally the
  pools let one ingest and one training step run at a time anyway, and a process per step would
  pay for importing PyTorch and Dagster again in every step (``benchmarks/bench_local_run.py``);
* ``multiprocess``: Dagster's multiprocess executor, one process per step;
* ``k8s``: ``dagster_k8s.k8s_job_executor``, one Kubernetes Job per step
  (pair it with the ``K8sRunLauncher`` of ``deploy/k8s/dagster.yaml``);
* ``celery``: ``dagster_celery.celery_executor``, one Celery task per step, on
  the queue named by the step's ``dagster-celery/queue`` tag.

The cluster packages are imported only when chosen (``pip install -e '.[k8s]'``
or ``'.[celery]'``).  The training step asks for a GPU on both through
:data:`TRAINING_OP_TAGS`; the local executors ignore those tags.
"""

import dagster as dg

from recsys_assets import settings

EXECUTORS = ("multiprocess", "in_process", "k8s", "celery")

# What the training step needs on a cluster: a GPU node on Kubernetes, the `gpu` queue on Celery.
TRAINING_OP_TAGS = {
    "dagster-k8s/config": {
        "container_config": {
            "resources": {
                "requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
                "limits": {"memory": "32Gi", "nvidia.com/gpu": "1"},
            },
            "env": [{"name": "RECSYS_DEVICE", "value": "cuda"}],
        },
        "pod_spec_config": {
            "node_selector": {"recsys/accelerator": "gpu"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
    },
    "dagster-celery/queue": "gpu",
}

# Every other step: CPU pods sized for a 25M-rating export (about 3 GB peak, README).
K8S_STEP_CONFIG = {
    "container_config": {
        "resources": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "8Gi"}},
    },
}


# k8s_job_executor's configuration (deploy/k8s/values.yaml provides what it reads from the environment)
K8S_EXECUTOR_CONFIG = {
    "job_namespace": {"env": "DAGSTER_K8S_NAMESPACE"},
    "image_pull_policy": "IfNotPresent",
    "service_account_name": "dagster",
    "env_secrets": ["recsys-postgres", "recsys-object-store"],
    "env_vars": ["RECSYS_DATA_DIR", "RECSYS_EXPORT_PATH"],
    "max_concurrent": 4,
    "step_k8s_config": K8S_STEP_CONFIG,
}


def k8s_executor() -> dg.ExecutorDefinition:
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor.configured(K8S_EXECUTOR_CONFIG, name="recsys_k8s")


def celery_executor() -> dg.ExecutorDefinition:
    from dagster_celery import celery_executor as executor

    return executor.configured(
        {
            "broker": {"env": "RECSYS_CELERY_BROKER"},
            "backend": {"env": "RECSYS_CELERY_BACKEND"},
        },
        name="recsys_celery",
    )


def executor_from_env(name: str | None = None) -> dg.ExecutorDefinition:
    """The executor named by ``name`` or ``RECSYS_EXECUTOR`` (default ``in_process``)."""
    name = (name or settings.EXECUTOR.get()).strip()
    if name == "multiprocess":
        return dg.multiprocess_executor
    if name == "in_process":
        return dg.in_process_executor
    if name == "k8s":
        return k8s_executor()
    if name == "celery":
        return celery_executor()
    raise ValueError(f"RECSYS_EXECUTOR must be one of {', '.join(EXECUTORS)}, got {name!r}")
