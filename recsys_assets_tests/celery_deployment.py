"""A Celery deployment on loopback, for the end-to-end test and the benchmark: Redis as broker and result
backend, PostgreSQL (``deploy/celery/dagster.yaml``), moto's S3 server as the artifact store, and
``dagster-celery worker start`` workers, each with its own ``DAGSTER_HOME`` and ``RECSYS_WORK_DIR``.

    with celery_deployment(root, export) as deployment:
        deployment.start_worker(DEFAULT_QUEUE); deployment.start_worker(GPU_QUEUE)
        deployment.materialize(["*"], root / "run.log").wait()
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .conftest import REPO_ROOT, background_process
from .servers import postgres_server, redis_server, s3_server, wait_for

BIN = Path(sys.executable).parent
BUCKET, PREFIX = "recsys-artifacts", "recsys"
DATA_URL = f"s3://{BUCKET}/{PREFIX}"
DEFAULT_QUEUE, GPU_QUEUE = "dagster", "gpu"  # dagster-celery's default queue; TRAINING_OP_TAGS' queue


@dataclass
class Deployment:
    root: Path
    env: dict[str, str]  # what every process of the deployment shares: PostgreSQL, S3, broker, export
    pg: dict[str, str]
    s3: dict[str, str]
    stack: contextlib.ExitStack
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)
    work_dirs: list[Path] = field(default_factory=list)
    baseline: dict = field(default_factory=dict)  # the uninterrupted run's results
    started: float = field(default_factory=time.time)  # files older than this are not the deployment's
    _starts: int = 0

    def _home(self, name: str) -> Path:
        """A DAGSTER_HOME of its own, holding the shipped Celery instance file as is."""
        home = self.root / f"home-{name}"
        home.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / "deploy" / "celery" / "dagster.yaml", home / "dagster.yaml")
        return home

    def _work_dir(self, name: str) -> Path:
        self._starts += 1
        work = self.root / f"work-{name}-{self._starts}"
        work.mkdir(parents=True)
        self.work_dirs.append(work)
        return work

    def process_env(self, name: str) -> dict[str, str]:
        return dict(self.env, DAGSTER_HOME=str(self._home(name)), RECSYS_WORK_DIR=str(self._work_dir(name)))

    def start_worker(self, queue: str) -> subprocess.Popen:
        """``dagster-celery worker start`` on ``queue``, with a fresh working folder; waits until it is ready."""
        name = "gpu" if queue == GPU_QUEUE else "default"
        yaml_file = self.root / "celery.yaml"  # the executor's config block, as dagster-celery reads it
        yaml_file.write_text(
            json.dumps(
                {
                    "execution": {
                        "config": {
                            "broker": self.env["RECSYS_CELERY_BROKER"],
                            "backend": self.env["RECSYS_CELERY_BACKEND"],
                        }
                    }
                }
            )
        )
        log = self.root / f"worker-{name}-{self._starts + 1}.log"
        args = [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y", str(yaml_file)]
        args += ["-q", queue, "-n", name, "--", "--concurrency=1", "--without-gossip", "--without-mingle"]
        proc = self.stack.enter_context(background_process(args, self.process_env(name), log))
        wait_for(f"celery worker {name}", lambda: " ready." in log.read_text(), timeout=120, log=log, proc=proc)
        self.workers[name] = proc
        return proc

    def kill_worker(self, name: str) -> None:
        """SIGKILL the worker's whole process group (the CLI, the Celery main process and its pool child)."""
        kill_group(self.workers.pop(name))

    def materialize(self, selection: list[str], log: Path, op_config: dict | None = None) -> subprocess.Popen:
        """``dagster asset materialize`` of ``selection`` with RECSYS_EXECUTOR=celery, in the background
        (``op_config``: each op's config, passed for the selected ops)."""
        ops = {op: {"config": c} for op, c in (op_config or {}).items() if op in selection or "*" in selection}
        config = {"ops": ops}
        args = [str(BIN / "dagster"), "asset", "materialize", "--select", ",".join(selection)]
        args += ["-m", "recsys_assets.definitions", "--config-json", json.dumps(config)]
        with open(log, "w") as out:
            proc = subprocess.Popen(
                args,
                cwd=REPO_ROOT,
                env=self.process_env("submitter"),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.stack.callback(kill_group, proc)  # a failed test or benchmark leaves no submitter behind
        return proc

    def instance(self):
        import dagster as dg

        return dg.DagsterInstance.from_config(str(self._home("submitter")))


@contextlib.contextmanager
def celery_deployment(root: Path, export: Path) -> Iterator[Deployment]:
    """Redis, the S3 server (with the bucket) and PostgreSQL, started under ``root``; workers are started
    with :meth:`Deployment.start_worker`. Everything is stopped on exit, the workers first."""
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(redis_server(root / "redis"))
        s3 = stack.enter_context(s3_server(root / "s3", BUCKET))
        pg = stack.enter_context(postgres_server())
        env = dict(
            os.environ,
            **pg,
            **s3,
            PYTHONPATH=str(REPO_ROOT),
            PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # dagster-celery starts `celery` from the PATH
            RECSYS_EXECUTOR="celery",
            RECSYS_CELERY_BROKER=f"{broker}/0",
            RECSYS_CELERY_BACKEND=f"{broker}/1",
            RECSYS_DATA_DIR=DATA_URL,
            RECSYS_EXPORT_PATH=str(export),
            RECSYS_DEVICE="cpu",
            MPLBACKEND="Agg",
        )
        yield Deployment(root=root, env=env, pg=pg, s3=s3, stack=stack)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc``'s process group (a no-op once it has exited and been reaped)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
