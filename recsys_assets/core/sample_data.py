"""Synthetic ratings exports in MovieLens ``ratings.csv`` format.

The generator draws ratings from a latent-factor model (global mean, user and
movie biases, a low-rank user x movie interaction and Gaussian noise), with a
long-tailed activity per user and popularity per movie, rounds them to the
half-star rating scale (0.5-5.0, ``core/rating_scale.py``) and stamps them with timestamps.  A model that learns
biases and factors therefore beats the global-mean baseline clearly, as it
does on real MovieLens data.

Which movies a user rates follows taste as well as popularity, as in real
catalogues (people mostly watch what they expect to like): a pair drawn by
popularity is kept with probability ``sigmoid(taste_weight * z)``, ``z`` the
standardized user x movie affinity over the first half of the taste dimensions
(what people choose to watch), while the rating uses all of them (how much they
then like it).  Without it (``taste_weight=0``) exposure would be random and no
personalized ranking could beat a most-popular list; with exposure on all the
dimensions, ratings would hardly vary among the movies people pick.  The same
seed always gives the same file.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from recsys_assets.core import rating_scale
from recsys_assets.core.atomic import atomic_path

HEADER = ("userId", "movieId", "rating", "timestamp")
GENERATOR_VERSION = 2  # 2: which movies a user rates follows taste (cached exports name the version)


@dataclass(frozen=True)
class SampleSpec:
    """Shape of a synthetic export; the defaults resemble ml-latest-small."""

    n_ratings: int = 100_000
    n_users: int = 1_000
    n_movies: int = 4_000
    n_factors: int = 8
    noise_std: float = 0.75
    taste_weight: float = 4.0  # how strongly affinity decides which movies a user rates (0: popularity only)
    seed: int = 42


def _long_tail_weights(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    weights = rng.lognormal(mean=0.0, sigma=sigma, size=n)
    return weights / weights.sum()


Progress = Callable[[str, float], None]  # (stage, share done) for a progress bar


def _chosen_by_taste(rng: np.random.Generator, spec: SampleSpec, users, movies, factors: tuple) -> np.ndarray:
    """Which drawn pairs are kept: with probability ``sigmoid(taste_weight * z)``, ``z`` the standardized
    affinity over the first half of the taste dimensions (think genre): what a user chooses to watch follows
    them, how much they then like it follows all of them, so ratings vary among the movies people pick."""
    user_factors, movie_factors, factor_std = factors
    shown = max(spec.n_factors // 2, 1)
    affinity_std = factor_std**2 * np.sqrt(shown)  # std of a dot product of two such half rows
    keep = np.empty(len(users), dtype=bool)
    for start in range(0, len(users), 1_000_000):
        u, m = users[start : start + 1_000_000], movies[start : start + 1_000_000]
        z = np.einsum("ij,ij->i", user_factors[u, :shown], movie_factors[m, :shown]) / affinity_std
        keep[start : start + 1_000_000] = rng.random(u.size) < 1.0 / (1.0 + np.exp(-spec.taste_weight * z))
    return keep


def _rate(rng: np.random.Generator, spec: SampleSpec, pairs: tuple, model: tuple, progress: Progress) -> np.ndarray:
    """The (unrounded) rating of each pair: 3.5 + biases + the centred interaction + noise, a block at a time."""
    users, movies = pairs
    user_bias, movie_bias, user_factors, movie_factors = model
    ratings = np.empty(spec.n_ratings, dtype=np.float64)
    block = 1_000_000
    # users rate what they like, so the kept pairs' mean affinity is positive: center it, to keep a 3.5 mean
    sample = slice(0, min(spec.n_ratings, block))
    interaction_mean = float(np.einsum("ij,ij->i", user_factors[users[sample]], movie_factors[movies[sample]]).mean())
    for start in range(0, spec.n_ratings, block):
        u, m = users[start : start + block], movies[start : start + block]
        interaction = np.einsum("ij,ij->i", user_factors[u], movie_factors[m]) - interaction_mean
        noise = rng.normal(0.0, spec.noise_std, u.size)
        ratings[start : start + block] = 3.5 + user_bias[u] + movie_bias[m] + interaction + noise
        progress("rating", min((start + block) / spec.n_ratings, 1.0))
    return ratings


def generate_ratings(spec: SampleSpec | None = None, *, on_progress: Progress | None = None) -> pa.Table:
    """Return a table ``userId, movieId, rating, timestamp`` of ``spec.n_ratings`` unique pairs."""
    spec = spec or SampleSpec()
    progress = on_progress or (lambda stage, share: None)
    if spec.n_ratings > spec.n_users * spec.n_movies // 2:
        raise ValueError("n_ratings must be at most half of n_users * n_movies")
    rng = np.random.default_rng(spec.seed)
    user_weights = _long_tail_weights(rng, spec.n_users, 1.1)
    movie_weights = _long_tail_weights(rng, spec.n_movies, 1.5)
    user_bias = rng.normal(0.0, 0.35, spec.n_users)
    # Popular movies are rated a little higher, as in real catalogues.
    popularity = np.log(movie_weights * spec.n_movies)
    movie_bias = rng.normal(0.0, 0.35, spec.n_movies) + 0.1 * (popularity - popularity.mean())
    factor_std = (0.35 / spec.n_factors) ** 0.25
    user_factors = rng.normal(0.0, factor_std, (spec.n_users, spec.n_factors)).astype(np.float32)
    movie_factors = rng.normal(0.0, factor_std, (spec.n_movies, spec.n_factors)).astype(np.float32)

    keys = np.empty(0, dtype=np.int64)
    kept_share = 1.0  # of the pairs drawn, the share that survives taste and de-duplication (learned per round)
    while keys.size < spec.n_ratings:
        need = int((spec.n_ratings - keys.size) * 1.2 / kept_share) + 1_000
        before = keys.size
        users = rng.choice(spec.n_users, size=need, p=user_weights)
        movies = rng.choice(spec.n_movies, size=need, p=movie_weights)
        if spec.taste_weight:
            keep = _chosen_by_taste(rng, spec, users, movies, (user_factors, movie_factors, factor_std))
            users, movies = users[keep], movies[keep]
        keys = np.unique(np.concatenate([keys, users.astype(np.int64) * spec.n_movies + movies]))
        kept_share = max((keys.size - before) / need, 0.05)
        progress("drawing pairs", min(keys.size / spec.n_ratings, 1.0))
    keys = np.sort(rng.choice(keys, size=spec.n_ratings, replace=False))
    users, movies = np.divmod(keys, spec.n_movies)

    ratings = _rate(rng, spec, (users, movies), (user_bias, movie_bias, user_factors, movie_factors), progress)
    ratings = rating_scale.current().snap(ratings)  # half stars, 0.5-5.0 (core/rating_scale.py)

    # MovieLens-like ids: users 1..n, movies sparse and increasing.
    movie_ids = np.cumsum(rng.integers(1, 6, spec.n_movies)).astype(np.int64)
    start_ts, end_ts = 946_684_800, 1_700_000_000  # 2000-01-01 .. 2023-11-14
    timestamps = rng.integers(start_ts, end_ts, spec.n_ratings, dtype=np.int64)
    return pa.table(
        {
            "userId": pa.array(users + 1, pa.int64()),
            "movieId": pa.array(movie_ids[movies], pa.int64()),
            "rating": pa.array(ratings, pa.float64()),
            "timestamp": pa.array(timestamps, pa.int64()),
        }
    )


def write_sample_export(
    path: str | os.PathLike, spec: SampleSpec | None = None, *, on_progress: Progress | None = None
) -> Path:
    """Write a synthetic export to ``path`` atomically and return the path."""
    path = Path(path)
    table = generate_ratings(spec, on_progress=on_progress)
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    block = 1_000_000
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write((",".join(HEADER) + "\n").encode())
            for start in range(0, max(table.num_rows, 1), block):
                pacsv.write_csv(table.slice(start, block), f, write_options=options)
                if on_progress is not None:
                    on_progress("writing", min((start + block) / max(table.num_rows, 1), 1.0))
    return path
