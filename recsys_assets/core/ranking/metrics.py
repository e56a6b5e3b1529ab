"""Ranking quality against held-out ratings: precision, recall, NDCG and hit rate at k, coverage.

The protocol: a held-out rating at or above a threshold (4.0 stars) makes that
movie relevant to that user; only users with at least one relevant movie are
scored; the movies a user rated in training are never recommended (the rankers
mask them), so a ranker cannot score by repeating what the user already has.

Users who rated exactly the same movies (a block of bots rating the same list) count as one user
between them in the means (:func:`profile_weights`), so trivially predictable copies cannot inflate
the headline figures; with no such block every user weighs 1 and the figures are the plain means.
"""

from dataclasses import dataclass, field

import numpy as np

from recsys_assets.core.ranking.interactions import UserItems

TOP_POPULAR = 100  # top100_share: the share of recommendations that are among this many most-rated movies


@dataclass(frozen=True)
class HeldOut:
    """The relevant movies of each user (CSR rows) and the users that have any."""

    relevant: UserItems
    users: np.ndarray  # sorted user indices with at least one relevant movie

    @classmethod
    def from_ratings(cls, users, movies, ratings, n_users: int, n_movies: int, threshold: float = 4.0) -> "HeldOut":
        keep = np.asarray(ratings, dtype=np.float64) >= threshold
        matrix = UserItems.from_pairs(np.asarray(users)[keep], np.asarray(movies)[keep], n_users, n_movies)
        return cls(matrix, np.flatnonzero(matrix.counts()))

    @classmethod
    def from_sets(cls, relevant: dict[int, set], n_users: int, n_movies: int) -> "HeldOut":
        pairs = [(u, m) for u, movies in relevant.items() for m in movies]
        users = np.array([p[0] for p in pairs], dtype=np.int64)
        movies = np.array([p[1] for p in pairs], dtype=np.int64)
        return cls.from_ratings(users, movies, np.ones(len(pairs)), n_users, n_movies, threshold=1.0)


@dataclass
class RankingScores:
    """Mean metrics over the evaluated users, and each user's NDCG (for paired comparisons)."""

    metrics: dict[str, float]
    ndcg_per_user: np.ndarray = field(repr=False)


def profile_weights(train: UserItems, users: np.ndarray, held: HeldOut | None = None) -> np.ndarray | None:
    """Per user of ``users``, 1 / how many of ``users`` rated exactly the same movies (training and held-out
    relevant ones together, so how the split fell does not matter); None when no two did."""
    users = np.asarray(users, dtype=np.int64)
    rng = np.random.default_rng(20_240_601)
    movie_key = rng.integers(1, 2**62, train.n_movies, dtype=np.uint64) | np.uint64(1)
    key = np.zeros(train.n_users, dtype=np.uint64)
    count = np.zeros(train.n_users, dtype=np.int64)
    for part in (train, None if held is None else held.relevant):
        if part is None:
            continue
        rows = np.repeat(np.arange(part.n_users), np.diff(part.indptr))
        with np.errstate(over="ignore"):
            np.add.at(key, rows, movie_key[part.indices.astype(np.int64)])
        count += part.counts()
    pairs = np.stack([key[users], count[users].astype(np.uint64)], axis=1)
    _, inverse, counts = np.unique(pairs, axis=0, return_inverse=True, return_counts=True)
    if counts.max(initial=1) < 2:
        return None
    return 1.0 / counts[inverse.ravel()]


def ranking_metrics(
    recommended: np.ndarray,
    users: np.ndarray,
    held: HeldOut,
    k: int,
    movie_counts: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> RankingScores:
    """Metrics at ``k`` of ``recommended[i]`` (movie indices, best first) for ``users[i]``.

    Rows of users with nothing relevant are skipped. ``coverage`` is the share of
    the catalogue recommended to anyone and ``max_movie_share`` the share of users shown
    the most-shown movie; with ``movie_counts`` (training ratings per movie)
    ``median_rating_count`` and ``top100_share`` (picks among the 100 most-rated movies)
    say how mainstream the recommendations are. ``weights`` (per row of ``users``, from
    :func:`profile_weights`) weigh the per-user means; None: every user weighs 1.
    """
    users = np.asarray(users, dtype=np.int64)
    recommended = np.asarray(recommended, dtype=np.int64)[:, :k]
    n_movies = held.relevant.n_movies
    n_relevant = held.relevant.counts()[users]
    scored = n_relevant > 0
    rec, n_rel = recommended[scored], n_relevant[scored]
    hits = held.relevant.contains(users[scored][:, None], rec)  # -1 pads a list shorter than k: never a hit
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discounts)[np.minimum(n_rel, k) - 1] if len(n_rel) else np.empty(0)
    ndcg = (hits * discounts[: rec.shape[1]]).sum(axis=1) / ideal if len(n_rel) else np.empty(0)
    n_hit = hits.sum(axis=1)
    w = None if weights is None else np.asarray(weights, dtype=np.float64)[scored]
    mean = lambda a: (float(np.mean(a)) if w is None else float(np.average(a, weights=w))) if len(a) else 0.0  # noqa: E731
    metrics = {
        f"ndcg_at_{k}": mean(ndcg),
        f"precision_at_{k}": mean(n_hit / k),
        f"recall_at_{k}": mean(n_hit / np.maximum(n_rel, 1)),
        f"hit_rate_at_{k}": mean(n_hit > 0),
        "coverage": len(np.unique(recommended[recommended >= 0])) / max(n_movies, 1),
        "users_evaluated": int(scored.sum()),
    }
    listed = recommended[recommended >= 0]
    if len(listed):  # how concentrated the lists are: the one movie shown to the most users
        metrics["max_movie_share"] = float(np.bincount(listed).max() / max(len(recommended), 1))
    if movie_counts is not None and len(listed):
        counts = np.asarray(movie_counts)
        metrics["median_rating_count"] = float(np.median(counts[listed]))
        top = np.argsort(-counts, kind="stable")[:TOP_POPULAR]
        metrics["top100_share"] = float(np.isin(listed, top).mean())  # picks among the 100 most-rated movies
    return RankingScores(metrics, ndcg)


def paired_gap(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean of ``a - b`` over the same users and its standard error (the noise of the comparison)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if len(d) < 2:
        return float(d.mean()) if len(d) else 0.0, float("inf")
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))
