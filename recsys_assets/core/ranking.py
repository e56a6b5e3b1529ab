"""Top-N recommendation in blocks of users, and ranking metrics against held-out ratings.

Scoring every movie for every user at once needs users x movies floats
(162,000 x 59,000 x 4 bytes = 38 GB for MovieLens 25M); here users are scored
a block at a time (one matrix product, masking of seen movies and one top-k
per block), so memory stays at block x movies.
"""

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class TopN:
    """Movie indices and scores, best first: arrays of shape (users, k)."""

    users: np.ndarray
    movies: np.ndarray
    scores: np.ndarray


def top_n(
    user_factors: np.ndarray,
    user_bias: np.ndarray,
    movie_factors: np.ndarray,
    movie_bias: np.ndarray,
    global_mean: float,
    seen_indptr: np.ndarray | None,
    seen_indices: np.ndarray | None,
    k: int = 10,
    users: np.ndarray | None = None,
    block: int = 1024,
) -> TopN:
    """Top-``k`` unseen movies per user (all users unless ``users`` is given)."""
    n_users, n_movies = len(user_bias), len(movie_bias)
    users = np.arange(n_users) if users is None else np.asarray(users, dtype=np.int64)
    k = min(k, n_movies)
    Q = torch.from_numpy(np.ascontiguousarray(movie_factors, dtype=np.float32))
    bi = torch.from_numpy(np.ascontiguousarray(movie_bias, dtype=np.float32))
    P = torch.from_numpy(np.ascontiguousarray(user_factors, dtype=np.float32))
    bu = torch.from_numpy(np.ascontiguousarray(user_bias, dtype=np.float32))
    out_movies = np.empty((len(users), k), dtype=np.int64)
    out_scores = np.empty((len(users), k), dtype=np.float32)
    buffer = torch.empty((min(block, max(len(users), 1)), n_movies), dtype=torch.float32)  # reused: no page-fault churn
    Qt = Q.T
    for start in range(0, len(users), block):
        idx = torch.from_numpy(users[start : start + block])
        scores = buffer[: len(idx)]
        torch.addmm(bi, P[idx], Qt, out=scores)
        scores += (bu[idx] + global_mean).unsqueeze(1)
        if seen_indptr is not None:
            rows, cols = _seen_pairs(users[start : start + block], seen_indptr, seen_indices)
            scores[torch.from_numpy(rows), torch.from_numpy(cols)] = -torch.inf
        top = torch.topk(scores, k, dim=1)
        out_movies[start : start + len(idx)] = top.indices.numpy()
        out_scores[start : start + len(idx)] = top.values.numpy()
    return TopN(users=users, movies=out_movies, scores=out_scores)


def _seen_pairs(users: np.ndarray, indptr: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    starts, ends = indptr[users], indptr[users + 1]
    counts = ends - starts
    rows = np.repeat(np.arange(len(users)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    cols = indices[np.repeat(starts, counts) + offsets].astype(np.int64)
    return rows, cols


def popularity_top_n(counts: np.ndarray, users: np.ndarray, seen_indptr, seen_indices, k: int) -> np.ndarray:
    """The most-rated movies each user has not seen (the baseline recommender)."""
    order = np.argsort(-counts, kind="stable")
    out = np.empty((len(users), k), dtype=np.int64)
    for row, u in enumerate(users):
        seen = seen_indices[seen_indptr[u] : seen_indptr[u + 1]]
        picks = order[: k + len(seen)]
        out[row] = picks[~np.isin(picks, seen)][:k]
    return out


def ranking_metrics(recommended: np.ndarray, users: np.ndarray, relevant: dict[int, set], k: int, n_movies: int) -> dict:
    """precision@k, recall@k, NDCG@k and hit rate@k over users with at least one relevant movie,
    and catalog coverage (share of movies recommended to anyone)."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    precision, recall, ndcg, hits, evaluated = 0.0, 0.0, 0.0, 0, 0
    for row, u in enumerate(users):
        rel = relevant.get(int(u))
        if not rel:
            continue
        evaluated += 1
        gains = np.fromiter((m in rel for m in recommended[row, :k]), dtype=bool, count=min(k, recommended.shape[1]))
        n_hit = int(gains.sum())
        precision += n_hit / k
        recall += n_hit / len(rel)
        ideal = discounts[: min(len(rel), k)].sum()
        ndcg += float(discounts[: len(gains)][gains].sum() / ideal)
        hits += n_hit > 0
    evaluated = max(evaluated, 1)
    return {
        f"precision_at_{k}": precision / evaluated,
        f"recall_at_{k}": recall / evaluated,
        f"ndcg_at_{k}": ndcg / evaluated,
        f"hit_rate_at_{k}": hits / evaluated,
        "coverage": len(np.unique(recommended[:, :k])) / n_movies,
        "users_evaluated": evaluated if relevant else 0,
    }
