"""The local run's overhead: the whole chain's wall time against the sum of its steps' times.

    .venv/bin/python benchmarks/bench_local_run.py            # both executors, one run each (~3 min on 2 cores)
    .venv/bin/python benchmarks/bench_local_run.py --runs 2
    .venv/bin/python benchmarks/bench_local_run.py --export benchmarks/output/ratings_25M_u162000_m59000_s20240501_g2.csv \
        --assets raw_ratings,cleaned_ratings,user_movie_mappings,train_ratings,val_ratings   # 25M, up to the splits

For each executor, a fresh ``DAGSTER_HOME`` (``deploy/local/dagster.yaml``) runs
``dg launch --assets '*'`` on the 100,000-rating sample export that ``scripts/run_pipeline.sh``
generates (``recsys sample`` defaults). The wall time of the command is compared with the sum of the
steps' own durations, read from the run's event log. The executors alternate in one invocation, so both
see the same machine. Rewrites the README's ``bench_local_run`` block (with ``--export``: the
``bench_local_run_export`` block of ``benchmarks/README.md``, with every step's time).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
EXECUTORS = ("in_process", "multiprocess")


def fresh_home(work: Path, name: str, export: Path, executor: str) -> tuple[Path, dict]:
    """A fresh ``DAGSTER_HOME`` (``deploy/local/dagster.yaml``) and data folder under ``work``, and the
    environment of a run there on ``export`` with ``executor``."""
    home, data = work / f"home-{name}", work / f"data-{name}"
    shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(data, ignore_errors=True)
    home.mkdir(parents=True)
    shutil.copy(ROOT / "deploy" / "local" / "dagster.yaml", home / "dagster.yaml")
    env = dict(
        os.environ,
        DAGSTER_HOME=str(home),
        RECSYS_DATA_DIR=str(data),
        RECSYS_EXPORT_PATH=str(export),
        RECSYS_EXECUTOR=executor,
        RECSYS_DEVICE="cpu",
        MPLBACKEND="Agg",
        PYTHONPATH=str(ROOT),
    )
    return home, env


def one_run(executor: str, export: Path, work: Path, assets: str = "*") -> dict:
    import dagster as dg

    home, env = fresh_home(work, executor, export, executor)
    started = time.perf_counter()
    proc = subprocess.run(
        [str(BIN / "dg"), "launch", "--assets", assets], cwd=ROOT, env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"dg launch failed ({executor}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs(limit=1)
        steps = instance.get_run_step_stats(run.run_id)
    per_step = {s.step_key: (s.end_time or 0) - (s.start_time or 0) for s in steps}
    step_seconds = sum(per_step.values())
    return {
        "per_step": per_step,
        "executor": executor,
        "wall": wall,
        "steps": step_seconds,
        "n_steps": len(steps),
        "ratio": wall / step_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1, help="runs per executor (alternating)")
    parser.add_argument("--no-readme", action="store_true")
    parser.add_argument("--export", help="an existing export to run on (default: the 100,000-rating sample)")
    parser.add_argument("--assets", default="*", help="the dg launch selection (default: every asset)")
    args = parser.parse_args()
    from recsys_assets.core.sample_data import SampleSpec, write_sample_export

    with tempfile.TemporaryDirectory(prefix="bench-local-run-") as tmp:
        work = Path(tmp)
        if args.export:
            export = Path(args.export).resolve()
        else:
            export = write_sample_export(work / "ratings_export.csv", SampleSpec())
        results = []
        for _ in range(args.runs):
            for executor in EXECUTORS:
                result = one_run(executor, export, work, args.assets)
                print(
                    f"{executor:>12}: wall {result['wall']:.1f}s, steps {result['steps']:.1f}s "
                    f"({result['n_steps']} steps), ratio {result['ratio']:.2f}x",
                    flush=True,
                )
                results.append(result)
    best = {e: min((r for r in results if r["executor"] == e), key=lambda r: r["ratio"]) for e in EXECUTORS}
    rows = ["| executor | `dg launch` wall time | sum of step times | ratio |", "| --- | ---: | ---: | ---: |"]
    for executor in EXECUTORS:
        r = best[executor]
        default = " (local default)" if executor == "in_process" else ""
        rows.append(f"| `{executor}`{default} | {r['wall']:.1f} s | {r['steps']:.1f} s | **{r['ratio']:.2f}x** |")
    what = f"`{Path(args.export).name}`, assets `{args.assets}`" if args.export else "100,000-rating sample"
    text = "\n".join(rows) + (
        f"\n\n(`benchmarks/bench_local_run.py`: {what}, {best['in_process']['n_steps']} "
        f"steps, best of {args.runs} alternating run(s) per executor, 2-core machine)"
    )
    if args.export:  # every step's time, to see where a large export's run goes
        steps = ["| step | " + " | ".join(EXECUTORS) + " |", "| --- |" + " ---: |" * len(EXECUTORS)]
        for key in sorted(best["in_process"]["per_step"]):
            times = " | ".join(f"{best[e]['per_step'].get(key, 0.0):.1f} s" for e in EXECUTORS)
            steps.append(f"| `{key}` | {times} |")
        text += "\n\n" + "\n".join(steps)
    print(text)
    if not args.no_readme:
        from benchmarks.readme_blocks import replace_block

        if args.export:
            replace_block("bench_local_run_export", text, readme=ROOT / "benchmarks" / "README.md")
        else:
            replace_block("bench_local_run", text)


if __name__ == "__main__":
    main()
