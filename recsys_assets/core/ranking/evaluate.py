"""Rankers side by side on one split, and the rule that says whether a ranker beats most-popular.

A ranker is a function ``(users, k) -> movie indices (len(users), k)`` that
never returns a movie the user rated in training. Every ranker is scored on
the same users with the same relevant movies (:class:`HeldOut`).
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from recsys_assets.core.ids import IdMapping
from recsys_assets.core.promotion import Evidence
from recsys_assets.core.ranking.blend import blend_top_n
from recsys_assets.core.ranking.interactions import UserItems
from recsys_assets.core.ranking.metrics import (
    HeldOut,
    RankingScores,
    paired_gap,
    ranking_metrics,
)
from recsys_assets.core.ranking.topn import popularity_top_n, top_n

Ranker = Callable[[np.ndarray, int], np.ndarray]


def factor_ranker(
    user_factors: np.ndarray, movie_factors: np.ndarray, seen: UserItems, movie_bias: np.ndarray | None = None
) -> Ranker:
    """Rank by ``user . movie (+ movie bias)``: iALS (no bias) or the rating model (with its movie bias)."""
    return lambda users, k: top_n(user_factors, movie_factors, seen, k=k, users=users, movie_bias=movie_bias).movies


def popularity_ranker(seen: UserItems) -> Ranker:
    """The most-rated movies (in training) that the user has not rated."""
    counts = seen.movie_counts()
    return lambda users, k: popularity_top_n(counts, users, seen, k)


def evaluate_rankers(
    rankers: dict[str, Ranker], train: UserItems, held: HeldOut, k: int = 10
) -> dict[str, RankingScores]:
    """Each ranker's metrics at ``k`` on ``held``'s users (training movies excluded by the rankers)."""
    counts = train.movie_counts()
    return {name: ranking_metrics(rank(held.users, k), held.users, held, k, counts) for name, rank in rankers.items()}


@dataclass(frozen=True)
class Comparison:
    """A ranker against most-popular on the same users: NDCG gap, its standard error, and the verdict."""

    ndcg: float
    baseline_ndcg: float
    gap: float
    standard_error: float
    z: float

    @property
    def beats(self) -> bool:
        return self.gap > 0

    @property
    def loses_beyond_noise(self) -> bool:
        """Worse than the baseline by more than ``z`` standard errors of the paired per-user gap."""
        return self.gap < -self.z * self.standard_error

    def describe(self, k: int = 10) -> str:
        verdict = "beats" if self.beats else ("loses to" if self.loses_beyond_noise else "does not beat (within noise)")
        return (
            f"NDCG@{k} {self.ndcg:.4f} {verdict} most popular {self.baseline_ndcg:.4f} "
            f"(gap {self.gap:+.4f} +/- {self.standard_error:.4f})"
        )


def compare(scores: RankingScores, baseline: RankingScores, k: int = 10, z: float = 2.0) -> Comparison:
    gap, se = paired_gap(scores.ndcg_per_user, baseline.ndcg_per_user)
    return Comparison(scores.metrics[f"ndcg_at_{k}"], baseline.metrics[f"ndcg_at_{k}"], gap, se, z)


def fresh_ndcg_evidence(
    current, candidate: Ranker, users: IdMapping, movies: IdMapping, val, *, threshold: float = 4.0, k: int = 10
) -> Evidence:
    """The candidate ranker (in ``users``/``movies`` indices) and the published ``RankingModel`` ``current``,
    scored on the same validation ratings that ``current`` never trained on, for users it knows.

    Each ranker masks its own training ratings; a movie ``current`` recommends that the new
    mappings do not know counts as a miss."""
    raw_users, raw_movies = users.ids[val.users], movies.ids[val.movies]
    current_users = current.users.encode(raw_users, unknown=-1)
    fresh = ~current.seen.contains(current_users, current.movies.encode(raw_movies, unknown=-1)) & (current_users >= 0)
    held = HeldOut.from_ratings(
        val.users[fresh], val.movies[fresh], val.ratings[fresh], len(users), len(movies), threshold
    )
    metric = f"val NDCG@{k}"
    if not len(held.users):
        return Evidence(metric, float("nan"), float("nan"), int(fresh.sum()), lower_is_better=False)
    ranked = candidate(held.users, k)
    theirs = current.top_n(current.users.encode(users.ids[held.users]), k).movies
    theirs = np.where(theirs >= 0, movies.encode(current.movies.ids[np.maximum(theirs, 0)], unknown=-1), -1)
    return _ndcg_evidence(
        ranked, theirs, held, k, metric=metric, n=int(fresh.sum()), on="fresh validation ratings it never trained on"
    )


def _without(seen: UserItems, users: np.ndarray, movies: np.ndarray) -> UserItems:
    """``seen`` less the (user index, movie index) pairs given (indices -1 are ignored)."""
    rows = np.repeat(np.arange(seen.n_users), np.diff(seen.indptr))
    drop = UserItems.from_pairs(users[users >= 0], movies[users >= 0], seen.n_users, seen.n_movies)
    keep = ~drop.contains(rows, seen.indices.astype(np.int64))
    values = None if seen.values is None else seen.values[keep]
    return UserItems.from_pairs(rows[keep], seen.indices[keep], seen.n_users, seen.n_movies, values)


def heldback_ndcg_evidence(
    current,
    candidate: Callable[[UserItems], Ranker],
    seen: UserItems,
    users: IdMapping,
    movies: IdMapping,
    held,
    *,
    threshold: float = 4.0,
    k: int = 10,
) -> Evidence:
    """The candidate (``candidate(mask)``: its published fit as a ranker in ``users``/``movies`` indices that
    masks ``mask``; ``seen`` its rated movies) and the published
    ``RankingModel`` ``current``, ranked for the users of ``current``'s held-back set ``held`` (raw ids and
    ratings). Each ranker masks what it has seen except the held-back pairs, which neither trained on; a held-back
    movie the candidate does not know is left out, one the published model recommends and the candidate lacks
    is a miss."""
    known = users.known(held.users) & movies.known(held.movies) & current.users.known(held.users)
    u, m, r = users.encode(held.users[known]), movies.encode(held.movies[known]), held.ratings[known]
    target = HeldOut.from_ratings(u, m, r, len(users), len(movies), threshold)
    metric, on = f"held-back NDCG@{k}", "ratings the published model held back (no published fit trained on them)"
    if not len(target.users):
        return Evidence(metric, float("nan"), float("nan"), 0, lower_is_better=False, on=on)
    mine = candidate(_without(seen, u, m))(target.users, k)
    cu = current.users.encode(held.users[known])
    cm = current.movies.encode(held.movies[known], unknown=-1)
    their_seen = _without(current.seen, np.where(cm >= 0, cu, -1), cm)
    theirs = blend_top_n(
        current.components(), current.weights, their_seen, current.users.encode(users.ids[target.users]), k
    ).movies
    theirs = np.where(theirs >= 0, movies.encode(current.movies.ids[np.maximum(theirs, 0)], unknown=-1), -1)
    return _ndcg_evidence(mine, theirs, target, k, metric=metric, n=int(known.sum()), on=on)


def _ndcg_evidence(mine, theirs, held: HeldOut, k: int, *, metric: str, n: int, on: str) -> Evidence:
    """NDCG@k of both recommendation lists for ``held``'s users, with the paired per-user gap's noise."""
    a, b = (ranking_metrics(recommended, held.users, held, k) for recommended in (mine, theirs))
    _, se = paired_gap(a.ndcg_per_user, b.ndcg_per_user)
    key = f"ndcg_at_{k}"
    return Evidence(metric, a.metrics[key], b.metrics[key], n, lower_is_better=False, on=on, standard_error=se)
