"""Training the ranking model: choose nothing on the figures reported, publish a model fit on everything.

1. Fit iALS on the training split and score it on the validation split beside
   most-popular (:func:`compare`): these are the reported figures and the
   publishing rule's evidence.
2. Fit again on training + validation with the same settings: that model is
   published, so recommendations use every rating the pipeline saw.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from recsys_assets.core.ranking.evaluate import Comparison, compare, evaluate_rankers, factor_ranker, popularity_ranker
from recsys_assets.core.ranking.ials import IALSModel, IALSParams, fit_ials
from recsys_assets.core.ranking.interactions import UserItems
from recsys_assets.core.ranking.metrics import HeldOut, RankingScores


@dataclass
class Ratings:
    """Parallel arrays of user indices, movie indices and ratings."""

    users: np.ndarray
    movies: np.ndarray
    ratings: np.ndarray

    def __len__(self) -> int:
        return len(self.ratings)

    def concat(self, other: "Ratings") -> "Ratings":
        return Ratings(*(np.concatenate([a, b]) for a, b in ((self.users, other.users), (self.movies, other.movies),
                                                              (self.ratings, other.ratings))))


@dataclass
class RankingTraining:
    """The held-out fit and its scores, and the fit on everything that gets published."""

    evaluation_model: IALSModel
    published_model: IALSModel
    published_seen: UserItems
    scores: dict[str, RankingScores]  # "ranking_model", "most_popular"
    comparison: Comparison

    @property
    def metrics(self) -> dict[str, float]:
        out = {f"val_{name}": float(v) for name, v in self.scores["ranking_model"].metrics.items()}
        out.update({f"popular_{name}": float(v) for name, v in self.scores["most_popular"].metrics.items()})
        out.update(ndcg_gap=self.comparison.gap, ndcg_gap_se=self.comparison.standard_error,
                   eval_fit_seconds=self.evaluation_model.fit_seconds, fit_seconds=self.published_model.fit_seconds)
        return out


def train_ranking_model(
    train: Ratings,
    val: Ratings,
    n_users: int,
    n_movies: int,
    params: IALSParams = IALSParams(),
    *,
    device: str | torch.device = "cpu",
    threshold: float = 4.0,
    k: int = 10,
    noise_z: float = 2.0,
    log: Callable[[str], None] = lambda message: None,
) -> RankingTraining:
    """Fit on ``train``, score on ``val`` beside most-popular, then refit on both for publishing.

    ``noise_z``: how many standard errors of the paired per-user NDCG gap count as noise
    in the comparison with most-popular (:class:`Comparison`)."""
    train_m = UserItems.from_pairs(train.users, train.movies, n_users, n_movies, train.ratings)
    held = HeldOut.from_ratings(val.users, val.movies, val.ratings, n_users, n_movies, threshold)

    def progress(stage: str):
        return lambda it, seconds: log(f"{stage}: ALS iteration {it}/{params.iterations} ({seconds:.2f} s)")

    held_out_fit = fit_ials(train_m, params, device=device, on_iteration=progress("held-out fit (training split)"))
    scores = evaluate_rankers(
        {"ranking_model": factor_ranker(held_out_fit.user_factors, held_out_fit.item_factors, train_m),
         "most_popular": popularity_ranker(train_m)},
        train_m, held, k,
    )
    comparison = compare(scores["ranking_model"], scores["most_popular"], k, z=noise_z)
    log(f"held-out fit: {comparison.describe(k)} over {scores['ranking_model'].metrics['users_evaluated']:,} users")
    everything = train.concat(val)
    all_m = UserItems.from_pairs(everything.users, everything.movies, n_users, n_movies, everything.ratings)
    published = fit_ials(all_m, params, device=device, on_iteration=progress("published fit (training + validation)"))
    return RankingTraining(held_out_fit, published, all_m, scores, comparison)
