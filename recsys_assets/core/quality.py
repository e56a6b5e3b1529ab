"""Data-quality rules for ratings tables and splits (the Dagster checks call these).

Each rule returns ``(passed, description, metadata)`` so that it can be tested
and reused without Dagster.
"""

import math

import numpy as np
import pandas as pd

from recsys_assets.core import rating_scale


def non_empty(ratings: pd.DataFrame):
    n = len(ratings)
    return n > 0, f"{n:,} ratings", {"rows": n}


def no_nulls(ratings: pd.DataFrame):
    nulls = {c: int(v) for c, v in ratings.isna().sum().items() if v}
    return not nulls, ("no nulls" if not nulls else f"nulls in {nulls}"), {"null_cells": int(sum(nulls.values()))}


def ratings_in_scale(ratings: pd.DataFrame, rating_min: float | None = None, rating_max: float | None = None):
    """Every rating within ``[rating_min, rating_max]`` (unset: the scale, ``core/rating_scale.py``)."""
    rating_min, rating_max = rating_scale.bounds(rating_min, rating_max)
    r = ratings["rating"].to_numpy(dtype=np.float64)
    bad = int((~((r >= rating_min) & (r <= rating_max))).sum())
    return bad == 0, f"{bad} ratings outside [{rating_min:g}, {rating_max:g}]", {"out_of_scale": bad}


def _pair_keys(*frames: pd.DataFrame) -> list[np.ndarray]:
    """One exact integer per (user, movie) pair, comparable across ``frames``: ``user << 32 | movie`` when
    every id fits 32 bits, else the pair's rank among the distinct pairs of all the frames."""
    users = [f["user_id"].to_numpy(dtype=np.int64) for f in frames]
    movies = [f["movie_id"].to_numpy(dtype=np.int64) for f in frames]
    fits = all(len(a) == 0 or (a.min() >= 0 and a.max() < 2**32) for a in users + movies)
    if fits:
        return [(u.astype(np.uint64) << np.uint64(32)) | m.astype(np.uint64) for u, m in zip(users, movies)]
    pairs = np.rec.fromarrays([np.concatenate(users), np.concatenate(movies)])
    ranks = np.unique(pairs, return_inverse=True)[1].astype(np.uint64)
    return np.split(ranks, np.cumsum([len(u) for u in users])[:-1])


def unique_pairs(ratings: pd.DataFrame):
    (keys,) = _pair_keys(ratings)
    keys = np.sort(keys)
    dups = int((keys[1:] == keys[:-1]).sum()) if len(keys) > 1 else 0
    return dups == 0, f"{dups} repeated (user, movie) pairs", {"duplicate_pairs": dups}


def splits_disjoint(train: pd.DataFrame, val: pd.DataFrame):
    train_keys, val_keys = _pair_keys(train, val)
    train_keys, val_keys = np.sort(train_keys), np.sort(val_keys)  # sorted queries: cache-friendly lookups
    if len(train_keys) == 0 or len(val_keys) == 0:
        return True, "0 (user, movie) pairs in both splits", {"shared_pairs": 0}
    pos = np.minimum(np.searchsorted(train_keys, val_keys), len(train_keys) - 1)
    shared = int(
        (train_keys[pos] == val_keys).sum()
    )  # both sorted, then a binary search: 1 s on 25M pairs (np.isin: 30 s)
    return shared == 0, f"{shared} (user, movie) pairs in both splits", {"shared_pairs": shared}


def split_sizes(train: pd.DataFrame, val: pd.DataFrame, test_size: float = 0.2):
    n = len(train) + len(val)
    expected = math.ceil(test_size * n)
    off = abs(len(val) - expected)
    return (
        off <= 1,
        f"validation has {len(val):,} of {n:,} rows (expected {expected:,})",
        {"val_rows": len(val), "expected_val_rows": expected},
    )
