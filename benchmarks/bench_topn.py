"""Top-N for every user of a MovieLens-25M-sized model, blocked vs a naive per-user loop.

    .venv/bin/python benchmarks/bench_topn.py [--users 162000] [--movies 59000] [--ratings 25000000]

The model has random weights (speed and memory do not depend on their values); the seen
matrix holds ``--ratings`` random (user, movie) pairs. Peak memory is this process's.
"""

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recsys_assets.core.ranking import UserItems, top_n  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=162_000)
    parser.add_argument("--movies", type=int, default=59_000)
    parser.add_argument("--ratings", type=int, default=25_000_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--naive-users", type=int, default=300)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    P = rng.normal(0, 0.1, (args.users, args.factors)).astype(np.float32)
    Q = rng.normal(0, 0.1, (args.movies, args.factors)).astype(np.float32)
    bi = rng.normal(0, 0.3, args.movies).astype(np.float32)
    users = rng.integers(0, args.users, args.ratings)
    movies = rng.integers(0, args.movies, args.ratings)
    pairs = np.unique(users * args.movies + movies)
    seen = UserItems.from_pairs(pairs // args.movies, pairs % args.movies, args.users, args.movies)
    del users, movies, pairs
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def naive(u: int) -> np.ndarray:  # the anchor: one user at a time, as a plain numpy loop would
        scores = Q @ P[u] + bi
        scores[seen.row(u)] = -np.inf
        top = np.argpartition(-scores, 9)[:10]
        return top[np.argsort(-scores[top], kind="stable")]

    t = time.perf_counter()
    for u in range(args.naive_users):
        naive(u)
    naive_rate = args.naive_users / (time.perf_counter() - t)

    t = time.perf_counter()
    result = top_n(P, Q, seen, k=10, movie_bias=bi)
    blocked_seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert result.movies.shape == (args.users, 10)
    assert naive(0).tolist() == result.movies[0].tolist(), "blocked and per-user top-10 disagree"
    lines = [
        f"Top-10 for all {args.users:,} users, {args.movies:,} movies, {args.factors} factors, {args.ratings:,} seen pairs "
        f"({os.cpu_count()} cores, load {os.getloadavg()[0]:.2f})",
        "",
        "| method | users/s | all users | peak RSS |",
        "| --- | ---: | ---: | ---: |",
        f"| naive per-user numpy loop ({args.naive_users} users) | {naive_rate:,.0f} | "
        f"{args.users / naive_rate / 60:,.1f} min (extrapolated) | {base_rss:,.0f} MB |",
        f"| blocked (`core.ranking.top_n`, 1024 users a block) | {args.users / blocked_seconds:,.0f} | "
        f"{blocked_seconds:,.1f} s | {peak:,.0f} MB |",
        "",
        f"speed-up {args.users / blocked_seconds / naive_rate:.1f}x; peak includes the model and seen matrix ({base_rss:,.0f} MB)",
    ]
    text = "\n".join(lines)
    print(text)
    out = Path(__file__).resolve().parent / "output"
    out.mkdir(exist_ok=True)
    (out / "topn.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
