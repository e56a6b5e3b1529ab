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
    ndcg = lambda recommended: ranking_metrics(recommended, held.users, held, k).metrics[f"ndcg_at_{k}"]  # noqa: E731
    return Evidence(metric, ndcg(ranked), ndcg(theirs), int(fresh.sum()), lower_is_better=False)
