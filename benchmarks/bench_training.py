"""Training engine, side by side in one run (CPU): accuracy on ratings nobody trained on, speed, and speed on a busy machine.

    .venv/bin/python benchmarks/bench_training.py            # ~15 min on 2 cores
    .venv/bin/python benchmarks/bench_training.py --seeds 42 --skip-contention   # a quick look
    .venv/bin/python benchmarks/bench_training.py --scale 1M,5M,25M            # also the epoch-time scale table

Part 1, the held-out protocol on MovieLens ml-latest-small (../shared/datasets/ml-latest-small/ratings.csv):
for each outer seed the ratings are split 80/20; the 80% is the export the pipeline gets (its own split
``random_state=42`` inside it chooses the epoch count; the shipped defaults then refit on all of it), and
the 20% is scored, never seen by any trainer (pairs whose user and movie the 80% knows). Every variant of
this trainer and scikit-surprise's ``SVD()`` and ``SVDpp()`` (defaults, given the whole 80%) run on the same
splits, one after the other in this process. Settings were chosen on the inner validation split, never on
these figures.

Part 2, contention: the whole training step (held-out fit with early stopping, then the refit) on a 3M-rating
synthetic export, against Surprise ``SVD()`` on the same training ratings, first on a quiet machine, then
while another process keeps one core busy.

Rewrites the ``bench_training`` block of README.md and the ``bench_training_detail`` block of
benchmarks/README.md.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from recsys_assets.settings import movielens_dir  # noqa: E402

ML_SMALL = movielens_dir() / "ratings.csv"  # RECSYS_MOVIELENS_DIR
OUT = ROOT / "benchmarks" / "output"
CONTENTION_SPEC = {"n_ratings": 3_000_000, "n_users": 20_000, "n_movies": 10_000, "seed": 16}

# name -> TrainConfig overrides (None: a Surprise algorithm); the first is what the pipeline ships
VARIANTS = {
    "**shipped**: biased MF + implicit feedback, refit on the 80%": {},
    "the same, held-out fit only (`refit: false`)": {"refit": False},
    "biased MF, no implicit feedback (`implicit_lr: 0`), refit": {"implicit_lr": 0.0},
    "biased MF, no implicit feedback, held-out fit only (round one's model)": {"implicit_lr": 0.0, "refit": False},
    "document recipe (`TrainConfig.plain_adam()`: Adam 0.001, batch 1024, 10 epochs)": "plain_adam",
    "**shipped, through the Dagster pipeline** (every asset materialized on the 80% export; the published file scored)": "pipeline",
    "Surprise `SVD()`": "SVD",
    "Surprise `SVDpp()`": "SVDpp",
}


def protocol_split(frame, seed: int):
    """(the export the pipeline gets as (train, val) datasets, the unseen ratings, sizes, frames)."""
    from recsys_assets.core.ids import build_mappings
    from recsys_assets.core.rating.dataset import MovieRatingDataset
    from recsys_assets.core.splits import split_ratings

    export, unseen = split_ratings(frame, 0.2, seed)
    users, movies = build_mappings(export)
    unseen = unseen[unseen["user_id"].isin(users.ids) & unseen["movie_id"].isin(movies.ids)]
    train, val = split_ratings(export, 0.2, 42)
    data = lambda f: MovieRatingDataset.from_frame(f, users, movies)  # noqa: E731
    return data(train), data(val), data(unseen), len(users), len(movies), export, unseen


def training_step(train, val, nu, nm, config) -> dict:
    """What the pipeline's training step does: the held-out fit with early stopping, then the refit if on."""
    from recsys_assets.core.rating.training import refit_on_all, train_model

    started = time.perf_counter()
    result = train_model(train, val, nu, nm, config)
    trained = len(train) * result.epochs_run
    model = result.model
    if config.refit:
        refit = refit_on_all(train, val, nu, nm, config, epochs=result.best_epoch)
        trained += (len(train) + len(val)) * refit.epochs_run
        model = refit.model
    seconds = time.perf_counter() - started
    return {"model": model, "seconds": seconds, "ratings_per_second": trained / seconds, "epochs": result.epochs_run}


def run_variant(spec, split) -> dict:
    from recsys_assets.core.rating.train_config import TrainConfig
    from recsys_assets.core.rating.training import evaluate

    train, val, unseen, nu, nm, export, unseen_frame = split
    if spec in ("SVD", "SVDpp"):
        return run_surprise(spec, export, unseen_frame)
    if spec == "pipeline":
        return run_pipeline(export, unseen_frame)
    config = TrainConfig.plain_adam() if spec == "plain_adam" else TrainConfig(**spec)
    out = training_step(train, val, nu, nm, config)
    out["rmse"] = evaluate(out.pop("model"), unseen, clamp=(config.rating_min, config.rating_max))[1]
    return out


def run_pipeline(export, unseen) -> dict:
    """The real chain: ``dg.materialize`` of every asset on the 80% as the export (CSV, the source's columns),
    then the published ``recommendation_model.pth`` loaded by ``Recommender`` and scored on the unseen 20%."""
    import tempfile

    import dagster as dg
    import numpy as np

    from recsys_assets import Recommender
    from recsys_assets.definitions import ASSETS
    from recsys_assets.defs.resources import DeviceResource, RecsysStorage, resources_for

    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "ratings_export.csv"
        export.rename(columns={"user_id": "userId", "movie_id": "movieId"}).to_csv(csv, index=False)
        storage = RecsysStorage(export_path=str(csv), data_dir=str(Path(tmp) / "data"))
        started = time.perf_counter()
        with dg.instance_for_test() as instance:
            result = dg.materialize(
                ASSETS, resources=resources_for(storage, DeviceResource(device="cpu")), instance=instance
            )
            assert result.success
            records = instance.fetch_materializations(dg.AssetKey("recommendation_model"), limit=1).records
        seconds = time.perf_counter() - started
        meta = records[0].asset_materialization.metadata if records and records[0].asset_materialization else {}
        rec = Recommender.load(Path(tmp) / "data" / "recommendation_model.pth")
        pred = rec.predict(unseen["user_id"].to_numpy(), unseen["movie_id"].to_numpy())
    rmse = float(np.sqrt(np.mean((pred - unseen["rating"].to_numpy()) ** 2)))
    epochs = meta.get("epochs_run")
    return {
        "rmse": rmse,
        "seconds": seconds,
        "ratings_per_second": float("nan"),
        "epochs": epochs.value if epochs else "-",
    }


def run_surprise(name: str, train_df, test_df) -> dict:
    import surprise

    reader = surprise.Reader(rating_scale=(0.5, 5.0))
    trainset = surprise.Dataset.load_from_df(train_df[["user_id", "movie_id", "rating"]], reader).build_full_trainset()
    algo = getattr(surprise, name)(random_state=42)
    started = time.perf_counter()
    algo.fit(trainset)
    seconds = time.perf_counter() - started
    out = {"seconds": seconds, "ratings_per_second": len(train_df) * algo.n_epochs / seconds, "epochs": algo.n_epochs}
    if test_df is not None:
        preds = algo.test(list(zip(test_df["user_id"], test_df["movie_id"], test_df["rating"].astype(float))))
        out["rmse"] = surprise.accuracy.rmse(preds, verbose=False)
    return out


def have_surprise() -> bool:
    try:
        import surprise  # noqa: F401
    except ImportError:
        return False
    return True


def heldout_protocol(seeds: list[int]) -> tuple[str, str, dict]:
    """(the README's short table, the per-seed table, raw results)."""
    import pandas as pd

    frame = pd.read_csv(ML_SMALL).rename(columns={"userId": "user_id", "movieId": "movie_id"})
    variants = {k: v for k, v in VARIANTS.items() if v not in ("SVD", "SVDpp") or have_surprise()}
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for seed in seeds:
        split = protocol_split(frame, seed)
        for name, spec in variants.items():
            r = run_variant(spec, split)
            runs[name].append({"seed": seed, **r})
            print(f"seed {seed} | {name} | RMSE {r['rmse']:.4f} | {r['seconds']:.1f} s", flush=True)
    svd = runs.get("Surprise `SVD()`")
    mean = lambda rows, key: sum(r[key] for r in rows) / len(rows)  # noqa: E731
    short = [
        f"| ml-latest-small, held-out protocol, mean of {len(seeds)} outer splits | RMSE | train s | ratings/s | speed vs Surprise SVD |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, rows in runs.items():
        rmse = f"**{mean(rows, 'rmse'):.4f}**" if name.startswith("**") else f"{mean(rows, 'rmse'):.4f}"
        if VARIANTS[name] == "pipeline":  # the whole chain's wall time; its training step is the first row's
            short.append(f"| {name} | {rmse} | (chain {mean(rows, 'seconds'):.1f}) | - | - |")
            continue
        speed = f"{mean(rows, 'ratings_per_second') / mean(svd, 'ratings_per_second'):.2f}x" if svd else "-"
        short.append(
            f"| {name} | {rmse} | {mean(rows, 'seconds'):.1f} | {mean(rows, 'ratings_per_second') / 1e6:.2f} M | {speed} |"
        )
    detail = [
        "| variant | " + " | ".join(f"RMSE seed {s}" for s in seeds) + " | epochs | train s |",
        "| --- | " + " | ".join("---:" for _ in seeds) + " | ---: | ---: |",
    ]
    for name, rows in runs.items():
        detail.append(
            f"| {name} | "
            + " | ".join(f"{r['rmse']:.4f}" for r in rows)
            + f" | {'/'.join(str(r['epochs']) for r in rows)} | {mean(rows, 'seconds'):.1f} |"
        )
    return "\n".join(short), "\n".join(detail), runs


@contextmanager
def one_core_busy():
    """Another process spinning on one core for the duration."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(1.0)
    try:
        yield
    finally:
        spinner.kill()
        spinner.wait()


def contention() -> tuple[str, dict]:
    """The whole training step and Surprise SVD on a 3M-rating export, quiet and with one core busy."""
    from recsys_assets.core.ids import build_mappings
    from recsys_assets.core.rating.dataset import MovieRatingDataset
    from recsys_assets.core.rating.train_config import TrainConfig
    from recsys_assets.core.sample_data import SampleSpec, generate_ratings
    from recsys_assets.core.splits import split_ratings

    frame = generate_ratings(SampleSpec(**CONTENTION_SPEC)).to_pandas()
    frame = frame.rename(columns={"userId": "user_id", "movieId": "movie_id"})
    users, movies = build_mappings(frame)
    train_df, val_df = split_ratings(frame, 0.2, 42)
    train = MovieRatingDataset.from_frame(train_df, users, movies)
    val = MovieRatingDataset.from_frame(val_df, users, movies)
    results = {}
    for load in ("quiet", "one core busy"):
        with one_core_busy() if load != "quiet" else _nothing():
            ours = training_step(train, val, len(users), len(movies), TrainConfig())
            ours.pop("model")
            theirs = run_surprise("SVD", train_df, None) if have_surprise() else None
        results[load] = {"ours": ours, "surprise_svd": theirs}
        print(load, ours, theirs, flush=True)
    lines = [
        f"| {len(frame) / 1e6:g}M-rating export ({CONTENTION_SPEC['n_users']:,} users x {CONTENTION_SPEC['n_movies']:,} movies) | "
        "whole training step, ratings/s | Surprise `SVD()` fit, ratings/s | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    for load, r in results.items():
        svd = r["surprise_svd"]
        ratio = f"**{r['ours']['ratings_per_second'] / svd['ratings_per_second']:.2f}x**" if svd else "-"
        svd_rate = f"{svd['ratings_per_second'] / 1e6:.2f} M" if svd else "-"
        lines.append(f"| {load} | {r['ours']['ratings_per_second'] / 1e6:.2f} M | {svd_rate} | {ratio} |")
    return "\n".join(lines), results


@contextmanager
def _nothing():
    yield


def first_use_seconds() -> float:
    """Seconds of the first compiled step in this process (outside the timed runs)."""
    from recsys_assets.core.rating.model import BiasedMF
    from recsys_assets.core.rating.optim import FusedSGD, WeightedRatings

    model = BiasedMF(4, 4, 64, global_mean=3.0, sparse=False)
    idx = torch.arange(4)
    optimizer = FusedSGD(model.parameters())
    t = time.perf_counter()
    optimizer.fit_batch(model, WeightedRatings(idx, idx, torch.full((4,), 3.0), torch.ones(4), torch.ones(4)))
    return time.perf_counter() - t


def scale_child(n: int) -> dict:
    """One size: generate, build tensors, time two epochs of the shipped trainer's step."""
    from recsys_assets.core.ids import build_mappings
    from recsys_assets.core.rating.dataset import MovieRatingDataset
    from recsys_assets.core.rating.epochs import sgd_epoch
    from recsys_assets.core.rating.model import BiasedMF
    from recsys_assets.core.rating.optim import FusedSGD, WeightedRatings, count_weights
    from recsys_assets.core.rating.train_config import TrainConfig
    from recsys_assets.core.sample_data import SampleSpec, generate_ratings

    df = generate_ratings(SampleSpec(n_ratings=n, n_users=162_000, n_movies=59_000, seed=11)).to_pandas()
    df = df.rename(columns={"userId": "user_id", "movieId": "movie_id"})
    users, movies = build_mappings(df)
    data = MovieRatingDataset.from_frame(df, users, movies)
    del df
    cfg = TrainConfig()
    torch.manual_seed(0)
    model = BiasedMF(
        len(users),
        len(movies),
        cfg.embedding_dim,
        global_mean=float(data.ratings.mean()),
        init_std=cfg.init_std,
        sparse=False,
    )
    opt = FusedSGD(model.parameters(), cfg.learning_rate, cfg.reg_factors, cfg.reg_bias)
    weighted = WeightedRatings(
        data.users,
        data.movies,
        data.ratings,
        count_weights(data.users, len(users), cfg.reg_count_exponent)[data.users],
        count_weights(data.movies, len(movies), cfg.reg_count_exponent)[data.movies],
    )
    gen = torch.Generator().manual_seed(0)
    times = []
    for _ in range(2):
        t = time.perf_counter()
        sq = sgd_epoch(model, opt, weighted, cfg.batch_size, gen)
        times.append(time.perf_counter() - t)
    return {
        "ratings": n,
        "epoch_seconds": min(times),
        "train_mse": float(sq) / n,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def parse_size(text: str) -> int:
    text = text.strip().upper()
    return int(float(text[:-1]) * 1_000_000) if text.endswith("M") else int(text)


def scale_table(sizes: list[int]) -> str:
    lines = [
        "Scale: one epoch of the shipped trainer (batch 4096, 64 factors) on synthetic ratings, 162,000 users x 59,000 movies",
        "",
        "| ratings | epoch s | ratings/s | peak RSS MB |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for n in sizes:
        proc = subprocess.run([sys.executable, __file__, "--child", str(n)], capture_output=True, text=True, check=True)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        lines.append(
            f"| {n / 1e6:g}M | {r['epoch_seconds']:.2f} | {n / r['epoch_seconds'] / 1e6:.2f} M | {r['peak_rss_mb']:,.0f} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="42,7,11", help="outer split seeds of the held-out protocol")
    parser.add_argument("--skip-contention", action="store_true")
    parser.add_argument("--scale", default="", help="also time one epoch at these sizes, e.g. 1M,5M,25M")
    parser.add_argument("--no-readme", action="store_true")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(scale_child(args.child)))
        return
    if not ML_SMALL.exists():
        sys.exit(f"{ML_SMALL} not found")
    OUT.mkdir(parents=True, exist_ok=True)
    import numba

    machine = (
        f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}; torch {torch.__version__}, "
        f"Numba {numba.__version__}" + (f", scikit-surprise {_surprise_version()}" if have_surprise() else "")
    )
    compile_s = first_use_seconds()
    seeds = [int(s) for s in args.seeds.split(",")]
    short, detail, runs = heldout_protocol(seeds)
    results: dict = {"heldout": runs, "numba_first_use_seconds": compile_s}
    readme = [short]
    details = [f"Machine: {machine}; load average at start {os.getloadavg()[0]:.2f}.", "", detail]
    if not args.skip_contention:
        table, results["contention"] = contention()
        readme += ["", table]
        details += ["", table]
    if args.scale:
        details += ["", scale_table([parse_size(s) for s in args.scale.split(",")])]
    details.append(
        f"\nNumba kernel, first use in this process: {compile_s:.1f} s; load average at end {os.getloadavg()[0]:.2f}"
    )
    readme.append(f"\n({machine}; per-seed figures in `benchmarks/README.md`)")
    text = "\n".join(readme)
    print(text)
    print("\n".join(details))
    (OUT / "training.json").write_text(json.dumps(results, indent=2, default=str))
    if not args.no_readme:
        from benchmarks.readme_blocks import replace_block

        replace_block("bench_training", text)
        replace_block("bench_training_detail", "\n".join(details), readme=ROOT / "benchmarks" / "README.md")


def _surprise_version() -> str:
    import surprise

    return surprise.__version__


if __name__ == "__main__":
    main()
