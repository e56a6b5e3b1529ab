"""The whole asset chain on a 25M-rating export, asset by asset through the real CLI.

    .venv/bin/python benchmarks/bench_scale.py [--ratings 25M] [--device cpu] [--executor in_process]

It generates (once, cached in benchmarks/output/) an export with MovieLens-25M table sizes
(162,000 users, 59,000 movies), then materializes the assets in lineage order, one
``dagster asset materialize --select <asset>`` run each, against a fresh DAGSTER_HOME (sqlite) and
data folder. Every run uses the in-process executor, so the step runs inside the CLI process, and a
small wrapper process reports that process's peak RSS (``ru_maxrss`` of its child). For each asset
it prints the step's wall time from Dagster's own event log (STEP_START to STEP_SUCCESS), the
command's wall time (CLI start and definitions load included) and the peak RSS, and writes the
table to benchmarks/output/scale.md (all figures in scale.json).
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "output"
# recsys_assets.core.sample_data.GENERATOR_VERSION of the cached exports (a test keeps them equal)
GENERATOR_VERSION = 2
BIN = Path(sys.executable).parent
N_USERS, N_MOVIES, SEED = 162_000, 59_000, 20240501  # the exports bench_ingest.py caches, shared
CHAIN = [  # lineage order; rating_splits materializes both train_ratings and val_ratings
    ("raw_ratings", "raw_ratings"),
    ("cleaned_ratings", "cleaned_ratings"),
    ("user_movie_mappings", "user_movie_mappings"),
    ("train_ratings + val_ratings", "train_ratings,val_ratings"),
    ("recommendation_model", "recommendation_model"),
    ("training_loss_plot", "training_loss_plot"),
    ("ranking_model", "ranking_model"),
    ("user_recommendations", "user_recommendations"),
    ("model_evaluation", "model_evaluation"),
]
WRAPPER = (
    "import json, resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "rc = subprocess.run(sys.argv[1:]).returncode\n"
    "print(json.dumps({'rc': rc, 'seconds': time.perf_counter() - t,\n"
    "                  'peak_rss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))\n"
)


def parse_size(text: str) -> int:
    text = text.strip().upper()
    return int(float(text[:-1]) * 1_000_000) if text.endswith("M") else int(text)


def export_for(n: int) -> Path:
    path = OUT / f"ratings_{n // 1_000_000}M_u{N_USERS}_m{N_MOVIES}_s{SEED}_g{GENERATOR_VERSION}.csv"
    if not path.exists():
        sys.path.insert(0, str(ROOT))
        from recsys_assets.core.sample_data import SampleSpec, write_sample_export

        print(f"generating {path.name} ...", flush=True)
        write_sample_export(path, SampleSpec(n_ratings=n, n_users=N_USERS, n_movies=N_MOVIES, seed=SEED))
    return path


def step_seconds(home: Path) -> dict[str, float]:
    """Per step key: STEP_START to STEP_SUCCESS, from the instance's event log."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home)
    seconds: dict[str, float] = {}
    with dg.DagsterInstance.get() as instance:
        for run in instance.get_runs():
            starts = {}
            for record in instance.all_logs(run.run_id):
                event = record.dagster_event
                if event is None:
                    continue
                if event.event_type == dg.DagsterEventType.STEP_START:
                    starts[event.step_key] = record.timestamp
                elif event.event_type == dg.DagsterEventType.STEP_SUCCESS and event.step_key in starts:
                    seconds[event.step_key] = record.timestamp - starts[event.step_key]
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ratings", default="25M")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work", default=str(OUT / "scale_run"), help="DAGSTER_HOME and data folder (wiped first)")
    args = parser.parse_args()
    n = parse_size(args.ratings)
    OUT.mkdir(parents=True, exist_ok=True)
    export = export_for(n)
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    home, data = work / "home", work / "data"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = dict(
        os.environ,
        DAGSTER_HOME=str(home),
        RECSYS_DATA_DIR=str(data),
        RECSYS_EXPORT_PATH=str(export),
        RECSYS_DEVICE=args.device,
        RECSYS_EXECUTOR="in_process",
        MPLBACKEND="Agg",
    )
    started = time.perf_counter()
    load_start = os.getloadavg()[0]
    rows = []
    for label, selection in CHAIN:
        cmd = [
            sys.executable,
            "-c",
            WRAPPER,
            str(BIN / "dagster"),
            "asset",
            "materialize",
            "--select",
            selection,
            "-m",
            "recsys_assets.definitions",
        ]
        print(f"==> {label}", flush=True)
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        (OUT / f"scale_{selection.split(',')[0]}.log").write_text(proc.stdout + proc.stderr)
        if result["rc"] != 0:
            print(proc.stderr[-4000:], file=sys.stderr)
            raise SystemExit(f"{label} failed (rc {result['rc']})")
        rows.append({"asset": label, **result})
        print(f"    {result['seconds']:.1f} s, peak RSS {result['peak_rss_mb']:,.0f} MB", flush=True)
    steps = step_seconds(home)
    for row in rows:
        key = "rating_splits" if row["asset"].startswith("train_ratings") else row["asset"]
        row["step_seconds"] = steps.get(key)
    total = time.perf_counter() - started

    import torch

    lines = [
        f"Machine: {os.cpu_count()} cores, {platform.machine()}, {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GB; "
        f"torch {torch.__version__}, device {args.device}; load average {load_start:.2f} at start, {os.getloadavg()[0]:.2f} at end",
        f"Export: {export.name} ({export.stat().st_size / 2**30:.2f} GB, {n:,} ratings, {N_USERS:,} users x {N_MOVIES:,} movies)",
        "",
        "| asset | step s | command s | peak RSS MB |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        step = f"{row['step_seconds']:.1f}" if row["step_seconds"] is not None else "-"
        lines.append(f"| {row['asset']} | {step} | {row['seconds']:.1f} | {row['peak_rss_mb']:,.0f} |")
    lines += ["", f"whole chain: {total / 60:.1f} min; largest peak RSS {max(r['peak_rss_mb'] for r in rows):,.0f} MB"]
    model = torch.load(data / "recommendation_model.pth", map_location="cpu", weights_only=True)
    metrics = model.get("metrics", {})
    if metrics:
        lines.append(
            "model: "
            + ", ".join(
                f"{k} {float(v):.4f}"
                for k, v in metrics.items()
                if k in ("val_rmse", "global_mean_rmse", "bias_only_rmse")
            )
            + f"; epochs run {len(model.get('history', []))}"
        )
    text = "\n".join(lines)
    print(text)
    (OUT / "scale.md").write_text(text + "\n")
    (OUT / "scale.json").write_text(json.dumps({"ratings": n, "rows": rows, "total_seconds": total}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
