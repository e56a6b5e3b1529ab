"""The chain's wall time on the Celery profile against the local default, same export.

    .venv/bin/python benchmarks/bench_celery.py              # one run each (~3 min on 2 cores)
    .venv/bin/python benchmarks/bench_celery.py --runs 2

Both run ``dagster asset materialize --select '*'`` on the 100,000-rating sample export (``recsys sample``
defaults), with the shipped training settings:

* **local default**: ``RECSYS_EXECUTOR=in_process``, sqlite ``DAGSTER_HOME`` (``deploy/local/dagster.yaml``),
  artifacts in a local folder;
* **Celery profile**: ``RECSYS_EXECUTOR=celery`` with the deployment of ``test_e2e_celery.py``, all on this
  machine's loopback: Redis as broker and result backend, PostgreSQL (``deploy/celery/dagster.yaml``),
  artifacts in an S3 bucket (moto's server) and two ``dagster-celery`` workers (default and ``gpu`` queue,
  one task at a time each), started and idle before the clock starts.

The wall time of the command is compared with the sum of the steps' own durations (STEP_START to
STEP_SUCCESS, from the run's event log). Rewrites the README's ``bench_celery`` block. Needs what the
Celery test needs: ``redis-server``, PostgreSQL's server binaries, and the dev extras (moto, s3fs).
"""

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent


def _step_seconds(instance) -> tuple[float, int]:
    (run,) = instance.get_runs(limit=1)
    assert run.status.value == "SUCCESS", run.status
    steps = instance.get_run_step_stats(run.run_id)
    return sum((s.end_time or 0) - (s.start_time or 0) for s in steps), len(steps)


def _materialize_args() -> list[str]:
    return [str(BIN / "dagster"), "asset", "materialize", "--select", "*", "-m", "recsys_assets.definitions"]


def local_run(export: Path, work: Path) -> dict:
    import dagster as dg

    from benchmarks.bench_local_run import fresh_home

    home, env = fresh_home(work, "local", export, "in_process")
    started = time.perf_counter()
    proc = subprocess.run(_materialize_args(), cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"local run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        steps, n = _step_seconds(instance)
    return {"profile": "local", "wall": wall, "steps": steps, "n_steps": n}


def celery_run(deployment, index: int) -> dict:
    log = deployment.root / f"bench-{index}.log"
    started = time.perf_counter()
    proc = deployment.materialize(["*"], log)
    proc.wait(timeout=900)  # the deployment kills it on exit if this times out
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"celery run failed:\n{log.read_text()[-4000:]}")
    with deployment.instance() as instance:
        steps, n = _step_seconds(instance)
    return {"profile": "celery", "wall": wall, "steps": steps, "n_steps": n}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1, help="runs per profile (alternating)")
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    from recsys_assets.core.sample_data import SampleSpec, write_sample_export
    from recsys_assets_tests.celery_deployment import DEFAULT_QUEUE, GPU_QUEUE, celery_deployment

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-celery-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        export = write_sample_export(work / "exports" / "ratings_export.csv", SampleSpec())
        deployment = stack.enter_context(celery_deployment(work / "celery", export))
        for name, value in {**deployment.pg, **deployment.s3}.items():  # to read the run back from PostgreSQL
            os.environ[name] = value
        deployment.start_worker(DEFAULT_QUEUE)
        deployment.start_worker(GPU_QUEUE)
        for i in range(args.runs):
            for result in (local_run(export, work), celery_run(deployment, i)):
                print(
                    f"{result['profile']:>7}: wall {result['wall']:.1f}s, steps {result['steps']:.1f}s "
                    f"({result['n_steps']} steps)",
                    flush=True,
                )
                results.append(result)
    best = {p: min((r for r in results if r["profile"] == p), key=lambda r: r["wall"]) for p in ("local", "celery")}
    local, celery = best["local"], best["celery"]
    rows = [
        "| profile | `dagster asset materialize --select '*'` wall time | sum of step times | vs local |",
        "| --- | ---: | ---: | ---: |",
        f"| local default (`in_process`, sqlite, local folder) | {local['wall']:.1f} s | {local['steps']:.1f} s | 1.00x |",
        f"| Celery (2 workers, Redis, PostgreSQL, S3 API) | {celery['wall']:.1f} s | {celery['steps']:.1f} s "
        f"| **{celery['wall'] / local['wall']:.2f}x** |",
    ]
    text = "\n".join(rows) + (
        f"\n\n(`benchmarks/bench_celery.py`: 100,000-rating sample, {celery['n_steps']} steps, best of {args.runs} "
        f"alternating run(s) per profile, every server and both workers on this {os.cpu_count()}-core machine)"
    )
    print(text)
    if not args.no_readme:
        from benchmarks.readme_blocks import replace_block

        replace_block("bench_celery", text)


if __name__ == "__main__":
    main()
