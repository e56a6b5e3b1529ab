"""Rankers side by side on one split, and the rule that says whether a ranker beats most-popular.

A ranker is a function ``(users, k) -> movie indices (len(users), k)`` that
never returns a movie the user rated in training. Every ranker is scored on
the same users with the same relevant movies (:class:`HeldOut`).
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from recsys_assets.core.ranking.interactions import UserItems
from recsys_assets.core.ranking.metrics import (
    HeldOut,
    RankingScores,
    paired_gap,
    profile_weights,
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
    """Each ranker's metrics at ``k`` on ``held``'s users (training movies excluded by the rankers); users with
    exactly the same rated movies count as one between them (``metrics.profile_weights``)."""
    counts, weights = train.movie_counts(), profile_weights(train, held.users, held)
    return {
        name: ranking_metrics(rank(held.users, k), held.users, held, k, counts, weights)
        for name, rank in rankers.items()
    }


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
