"""Top-N in blocks of users: one matrix product, one mask of seen movies and one top-k per block.

Scoring every movie for every user at once needs users x movies floats
(162,000 x 59,000 x 4 bytes = 38 GB for MovieLens 25M); a block at a time,
memory stays at block x movies.
"""

from dataclasses import dataclass

import numpy as np

from recsys_assets.core.ranking.interactions import UserItems
from recsys_assets.core.weights_file import torch_in_use


@dataclass
class TopN:
    """Movie indices and scores, best first: arrays of shape (users, k)."""

    users: np.ndarray
    movies: np.ndarray
    scores: np.ndarray


def top_n(
    user_factors: np.ndarray,
    movie_factors: np.ndarray,
    seen: UserItems | None,
    *,
    k: int = 10,
    users: np.ndarray | None = None,
    block: int = 1024,
    movie_bias: np.ndarray | None = None,
) -> TopN:
    """Top-``k`` unseen movies by ``user_factors @ movie_factors.T (+ movie_bias)``.

    All users unless ``users`` is given. Terms that are constant for a user (a
    user bias, the global mean) do not change the order and are left to the caller.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    n_users, n_movies = len(user_factors), len(movie_factors)
    users = np.arange(n_users) if users is None else np.asarray(users, dtype=np.int64)
    k = min(k, n_movies)
    if not torch_in_use():  # the read path: numpy, no PyTorch import
        return _top_n_numpy(user_factors, movie_factors, seen, k, users, movie_bias=movie_bias, block=block)
    import torch

    P = torch.from_numpy(np.ascontiguousarray(user_factors, dtype=np.float32))
    Qt = torch.from_numpy(np.ascontiguousarray(movie_factors, dtype=np.float32)).T
    bias = (
        torch.zeros(n_movies)
        if movie_bias is None
        else torch.from_numpy(np.ascontiguousarray(movie_bias, dtype=np.float32))
    )
    out_movies = np.empty((len(users), k), dtype=np.int64)
    out_scores = np.empty((len(users), k), dtype=np.float32)
    buffer = torch.empty((min(block, max(len(users), 1)), n_movies), dtype=torch.float32)  # reused: no page-fault churn
    for start in range(0, len(users), block):
        chunk = users[start : start + block]
        scores = buffer[: len(chunk)]
        torch.addmm(bias, P[torch.from_numpy(chunk)], Qt, out=scores)
        if seen is not None:
            rows, cols = seen.pairs(chunk)
            scores[torch.from_numpy(rows), torch.from_numpy(cols)] = -torch.inf
        top = torch.topk(scores, k, dim=1)
        out_movies[start : start + len(chunk)] = top.indices.numpy()
        out_scores[start : start + len(chunk)] = top.values.numpy()
    return TopN(users=users, movies=out_movies, scores=out_scores)


def _top_n_numpy(user_factors, movie_factors, seen, k: int, users: np.ndarray, *, movie_bias, block: int) -> TopN:
    """:func:`top_n` in numpy (the read path), a block of users at a time: scores, seen movies masked, the best
    ``k`` (ties: the lower movie index first)."""
    Q = np.ascontiguousarray(movie_factors, dtype=np.float32)
    bias = np.zeros(len(Q), np.float32) if movie_bias is None else np.asarray(movie_bias, dtype=np.float32)
    out_movies = np.empty((len(users), k), dtype=np.int64)
    out_scores = np.empty((len(users), k), dtype=np.float32)
    for start in range(0, len(users), block):
        chunk = users[start : start + block]
        scores = np.ascontiguousarray(user_factors[chunk], dtype=np.float32) @ Q.T + bias
        if seen is not None:
            rows, cols = seen.pairs(chunk)
            scores[rows, cols] = -np.inf
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        out_movies[start : start + len(chunk)] = order
        out_scores[start : start + len(chunk)] = np.take_along_axis(scores, order, axis=1)
    return TopN(users=users, movies=out_movies, scores=out_scores)


def popularity_top_n(counts: np.ndarray, users: np.ndarray, seen: UserItems | None, k: int) -> np.ndarray:
    """The most-rated movies each user has not seen (the baseline every ranker must beat); a row is
    padded with -1 when the user has seen all but fewer than ``k`` movies."""
    order = np.argsort(-np.asarray(counts), kind="stable")
    users = np.asarray(users, dtype=np.int64)
    k = min(k, len(order))
    out = np.full((len(users), k), -1, dtype=np.int64)
    for row, u in enumerate(users.tolist()):
        seen_u = seen.row(u) if seen is not None else np.empty(0, dtype=np.int32)
        picks = order[: k + len(seen_u)]
        picks = picks[~np.isin(picks, seen_u)][:k]
        out[row, : len(picks)] = picks
    return out
