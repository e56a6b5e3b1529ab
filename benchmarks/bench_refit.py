"""Does refitting on train + val pay? The rating model's held-out fit against its refit, on data neither saw.

    .venv/bin/python benchmarks/bench_refit.py            # ~1 min on 2 cores

For each outer seed, ml-latest-small is split 80/20: the 80% plays the export the pipeline gets, and the
20% is never seen. Inside the 80%, the pipeline's own split (``random_state=42``) trains with early
stopping (the held-out fit, whose validation figures the pipeline reports); the refit then trains on the
whole 80% for the epoch count early stopping chose (what the pipeline publishes with ``refit=True``).
Both are scored on the outer 20% (pairs whose user and movie the 80% knows). Rewrites the
``bench_refit`` block of ``benchmarks/README.md``.
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from recsys_assets.settings import movielens_dir  # noqa: E402

ML_SMALL = movielens_dir() / "ratings.csv"  # RECSYS_MOVIELENS_DIR


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="42,7,11", help="outer split seeds")
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    import pandas as pd

    from recsys_assets.core.ids import build_mappings
    from recsys_assets.core.rating.dataset import MovieRatingDataset
    from recsys_assets.core.rating.train_config import TrainConfig
    from recsys_assets.core.rating.training import evaluate, refit_on_all, train_model
    from recsys_assets.core.splits import split_ratings

    if not ML_SMALL.exists():
        sys.exit(f"{ML_SMALL} not found")
    frame = pd.read_csv(ML_SMALL).rename(columns={"userId": "user_id", "movieId": "movie_id"})
    rows = [
        "| outer seed | best epoch | held-out fit RMSE | refit RMSE | held-out fit s | refit s |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    gains = []
    for seed in (int(s) for s in args.seeds.split(",")):
        export, unseen = split_ratings(frame, 0.2, seed)
        users, movies = build_mappings(export)
        unseen = unseen[unseen["user_id"].isin(users.ids) & unseen["movie_id"].isin(movies.ids)]
        train, val = split_ratings(export, 0.2, 42)
        data = lambda f, u=users, m=movies: MovieRatingDataset.from_frame(f, u, m)  # noqa: E731
        config = TrainConfig()
        started = time.perf_counter()
        held = train_model(data(train), data(val), len(users), len(movies), config)
        held_seconds = time.perf_counter() - started
        started = time.perf_counter()
        refit = refit_on_all(data(train), data(val), len(users), len(movies), config, epochs=held.best_epoch)
        refit_seconds = time.perf_counter() - started
        clamp = (config.rating_min, config.rating_max)
        held_rmse = evaluate(held.model, data(unseen), clamp=clamp)[1]
        refit_rmse = evaluate(refit.model, data(unseen), clamp=clamp)[1]
        gains.append(held_rmse - refit_rmse)
        rows.append(
            f"| {seed} | {held.best_epoch} | {held_rmse:.4f} | **{refit_rmse:.4f}** | "
            f"{held_seconds:.1f} | {refit_seconds:.1f} |"
        )
        print(rows[-1], flush=True)
    text = "\n".join(rows) + (
        f"\n\nMean RMSE gain of the refit: **{sum(gains) / len(gains):.4f}** "
        "(ml-latest-small, shipped defaults; the first held-out fit's time includes Numba's compile)"
    )
    print(text)
    if not args.no_readme:
        from benchmarks.readme_blocks import replace_block

        replace_block("bench_refit", text, readme=ROOT / "benchmarks" / "README.md")


if __name__ == "__main__":
    main()
