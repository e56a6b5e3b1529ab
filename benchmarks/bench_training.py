"""Training engine, side by side in one run (CPU).

    .venv/bin/python benchmarks/bench_training.py [--rounds 2] [--scale 1M,5M,25M] [--skip-scale]

Part 1, on MovieLens ml-latest-small (../shared/datasets/ml-latest-small/ratings.csv), split
80/20 with ``random_state=42``, alternating rounds:

* this project's ``train_model`` with the shipped defaults (the compiled Numba step), and the same
  with ``kernel="eager"`` (the same updates as plain PyTorch operations);
* the document's recipe written plainly: a per-sample ``DataLoader`` over ``MovieRatingDataset``
  (batch 1024, shuffled), dense ``Adam(lr=0.001)``, ``nn.MSELoss``, 10 epochs;
* scikit-surprise's ``SVD()`` with its defaults (``pip install scikit-surprise``).

Part 2, epoch time on synthetic exports of 1M, 5M and 25M ratings with MovieLens-25M table sizes
(162,000 users, 59,000 movies), each size in its own subprocess so that peak memory is its own.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ML_SMALL = ROOT.parent / "shared" / "datasets" / "ml-latest-small" / "ratings.csv"
OUT = ROOT / "benchmarks" / "output"


def load_split():
    from recsys_assets.core.cleaning import clean_rating_data
    from recsys_assets.core.dataset import MovieRatingDataset, build_mappings, split_ratings
    from recsys_assets.core.ingest import MovieDataLoader

    ratings = clean_rating_data(MovieDataLoader(ML_SMALL).load()).ratings
    users, movies = build_mappings(ratings)
    train, val = split_ratings(ratings)
    return (
        MovieRatingDataset.from_frame(train, users, movies),
        MovieRatingDataset.from_frame(val, users, movies),
        len(users),
        len(movies),
        train,
        val,
    )


def run_ours(train, val, nu, nm, kernel="auto"):
    from recsys_assets.core.training import TrainConfig, train_model

    result = train_model(train, val, nu, nm, TrainConfig(kernel=kernel))
    best = result.history[result.best_epoch - 1]
    return {
        "val_rmse": best["val_rmse"],
        "seconds": result.train_seconds,
        "ratings_per_second": result.ratings_per_second,
        "epochs": result.epochs_run,
    }


def first_use_seconds() -> float:
    """Seconds of the first compiled step in this process (outside the timed runs)."""
    from recsys_assets.core.model import BiasedMF
    from recsys_assets.core.optim import FusedSGD, WeightedRatings

    model = BiasedMF(4, 4, 64, global_mean=3.0, sparse=False)
    idx = torch.arange(4)
    optimizer = FusedSGD(model.parameters())
    t = time.perf_counter()
    optimizer.fit_batch(model, WeightedRatings(idx, idx, torch.full((4,), 3.0), torch.ones(4), torch.ones(4)))
    return time.perf_counter() - t


def run_document(train, val, nu, nm, epochs=10):
    from torch.utils.data import DataLoader

    from recsys_assets.core.model import BiasedMF
    from recsys_assets.core.training import evaluate

    torch.manual_seed(42)
    model = BiasedMF(nu, nm, 64, global_mean=float(train.ratings.mean()), init_std=0.01, sparse=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    criterion = torch.nn.MSELoss()
    loader = DataLoader(train, batch_size=1024, shuffle=True)
    seconds = 0.0
    for _ in range(epochs):
        model.train()
        t = time.perf_counter()
        for users, movies, ratings in loader:
            optimizer.zero_grad()
            loss = criterion(model(users, movies), ratings)
            loss.backward()
            optimizer.step()
        seconds += time.perf_counter() - t
        evaluate(model, val)
    _, val_rmse, _ = evaluate(model, val, clamp=(0.5, 5.0))
    return {
        "val_rmse": val_rmse,
        "seconds": seconds,
        "ratings_per_second": len(train) * epochs / seconds,
        "epochs": epochs,
    }


def run_surprise(train_df, val_df):
    try:
        from surprise import SVD, Dataset, Reader, accuracy
    except ImportError:
        return None
    reader = Reader(rating_scale=(0.5, 5.0))
    data = Dataset.load_from_df(train_df[["user_id", "movie_id", "rating"]], reader)
    trainset = data.build_full_trainset()
    algo = SVD(random_state=42)
    t = time.perf_counter()
    algo.fit(trainset)
    seconds = time.perf_counter() - t
    preds = algo.test(list(zip(val_df["user_id"], val_df["movie_id"], val_df["rating"].astype(float))))
    return {
        "val_rmse": accuracy.rmse(preds, verbose=False),
        "seconds": seconds,
        "ratings_per_second": len(train_df) * algo.n_epochs / seconds,
        "epochs": algo.n_epochs,
    }


def scale_child(n: int) -> dict:
    """One size: generate, build tensors, time two epochs of the shipped trainer's step."""
    from recsys_assets.core.dataset import MovieRatingDataset, build_mappings
    from recsys_assets.core.model import BiasedMF
    from recsys_assets.core.optim import FusedSGD, WeightedRatings, count_weights
    from recsys_assets.core.sample_data import SampleSpec, generate_ratings
    from recsys_assets.core.training import TrainConfig, _sgd_epoch

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
        sq = _sgd_epoch(model, opt, weighted, cfg.batch_size, gen)
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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--scale", default="1M,5M,25M")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(scale_child(args.child)))
        return
    OUT.mkdir(parents=True, exist_ok=True)
    lines = [
        f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); load average at start {os.getloadavg()[0]:.2f}",
        "",
    ]
    results = {}
    if ML_SMALL.exists():
        train, val, nu, nm, train_df, val_df = load_split()
        compile_s = first_use_seconds()
        runs = {
            "this trainer (defaults)": [],
            "this trainer, kernel=eager": [],
            "document: per-sample DataLoader + Adam": [],
            "Surprise SVD()": [],
        }
        for _ in range(args.rounds):
            runs["this trainer (defaults)"].append(run_ours(train, val, nu, nm))
            runs["this trainer, kernel=eager"].append(run_ours(train, val, nu, nm, kernel="eager"))
            runs["document: per-sample DataLoader + Adam"].append(run_document(train, val, nu, nm))
            s = run_surprise(train_df, val_df)
            if s:
                runs["Surprise SVD()"].append(s)
        best = {k: max(v, key=lambda r: r["ratings_per_second"]) for k, v in runs.items() if v}
        surprise_rate = best["Surprise SVD()"]["ratings_per_second"] if "Surprise SVD()" in best else None
        lines += [
            f"ml-latest-small, 80/20 split (random_state=42): {len(train):,} training ratings; best of {args.rounds} alternating rounds",
            "",
            "| trainer | val RMSE | epochs | train s | ratings/s | vs Surprise |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name, r in best.items():
            ratio = f"{r['ratings_per_second'] / surprise_rate:.2f}x" if surprise_rate else "-"
            lines.append(
                f"| {name} | {r['val_rmse']:.4f} | {r['epochs']} | {r['seconds']:.2f} | {r['ratings_per_second'] / 1e6:.2f} M | {ratio} |"
            )
        lines += [
            "",
            f"Numba kernel, first use in this process (compile, or load from its on-disk cache): {compile_s:.1f} s",
        ]
        results["ml_small"] = runs
        results["numba_first_use_seconds"] = compile_s
    else:
        lines.append(f"ml-latest-small not found at {ML_SMALL}: part 1 skipped")
    if not args.skip_scale:
        sizes = [parse_size(s) for s in args.scale.split(",")]
        lines += [
            "",
            "Scale: one epoch of the shipped trainer (batch 4096, 64 factors) on synthetic ratings, 162,000 users x 59,000 movies",
            "",
            "| ratings | epoch s | ratings/s | peak RSS MB |",
            "| ---: | ---: | ---: | ---: |",
        ]
        scale = []
        for n in sizes:
            proc = subprocess.run(
                [sys.executable, __file__, "--child", str(n)], capture_output=True, text=True, check=True
            )
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            scale.append(r)
            lines.append(
                f"| {n / 1e6:g}M | {r['epoch_seconds']:.2f} | {n / r['epoch_seconds'] / 1e6:.2f} M | {r['peak_rss_mb']:,.0f} |"
            )
        if len(scale) > 1:
            ratio = scale[-1]["epoch_seconds"] / scale[0]["epoch_seconds"]
            lines += [
                "",
                f"epoch time {sizes[-1] / 1e6:g}M / {sizes[0] / 1e6:g}M = {ratio:.1f} (ratings ratio {sizes[-1] / sizes[0]:g})",
            ]
        results["scale"] = scale
    lines.append(f"\nload average at end {os.getloadavg()[0]:.2f}")
    text = "\n".join(lines)
    print(text)
    (OUT / "training.md").write_text(text + "\n")
    (OUT / "training.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
