"""Training the ranking model: choose nothing on the figures reported, publish a model fit on everything.

1. Choose the model's capacity (factors, regularization) for this export on an
   inner split of the training split (:func:`select_params`): the best setting
   differs by data set (128 factors on MovieLens, 16 on the synthetic sample).
2. Fit iALS on the training split and score it on the validation split beside
   most-popular (:func:`compare`): these are the reported figures and the
   publishing rule's evidence.
3. Fit again on training + validation with the same settings: that model is
   published, so recommendations use every rating the pipeline saw.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from recsys_assets.core.ranking.evaluate import (
    Comparison,
    compare,
    evaluate_rankers,
    factor_ranker,
    popularity_ranker,
)
from recsys_assets.core.ranking.ials import IALSModel, IALSParams, fit_ials
from recsys_assets.core.ranking.interactions import UserItems
from recsys_assets.core.ranking.metrics import HeldOut, RankingScores


@dataclass
class Ratings:
    """Parallel arrays of user indices, movie indices and ratings."""

    users: np.ndarray
    movies: np.ndarray
    ratings: np.ndarray

    @classmethod
    def from_frame(cls, frame, users, movies) -> "Ratings":
        """Index arrays of a ``user_id, movie_id, rating`` table under the given ``IdMapping``s."""
        return cls(
            users.encode(frame["user_id"]), movies.encode(frame["movie_id"]), frame["rating"].to_numpy(np.float32)
        )

    def __len__(self) -> int:
        return len(self.ratings)

    def concat(self, other: "Ratings") -> "Ratings":
        return Ratings(
            *(
                np.concatenate([a, b])
                for a, b in ((self.users, other.users), (self.movies, other.movies), (self.ratings, other.ratings))
            )
        )


@dataclass
class Selection:
    """The chosen setting and every candidate's NDCG@10 on the inner split."""

    params: IALSParams
    candidates: list[dict] = field(default_factory=list)
    inner_users: int = 0


def select_params(
    train: Ratings,
    n_users: int,
    n_movies: int,
    base: IALSParams,
    factors: Sequence[int],
    regularization: Sequence[float],
    *,
    max_users: int = 20_000,
    seed: int = 0,
    threshold: float = 4.0,
    noise_z: float = 2.0,
    device: str | torch.device = "cpu",
    log: Callable[[str], None] = lambda message: None,
) -> Selection:
    """Pick ``factors`` x ``regularization`` on an inner 80/20 split of ``train`` (never the validation split).

    At most ``max_users`` users' ratings take part (a random sample), which bounds
    the cost on large exports. One value of each fixes the setting without fitting.
    The first combination is the default: another replaces it only when its NDCG@10
    is higher by more than ``noise_z`` standard errors of the paired per-user gap, so
    that a small inner split does not trade a good default for a lucky draw.
    """
    grid = [(int(f), float(r)) for f in factors for r in regularization]
    if not grid:
        raise ValueError("give at least one value of factors and of regularization")
    if len(grid) == 1:
        return Selection(replace(base, factors=grid[0][0], regularization=grid[0][1]))
    rng = np.random.default_rng(seed)
    users = np.unique(train.users)
    if len(users) > max_users:
        users = rng.choice(users, max_users, replace=False)
    keep = np.isin(train.users, users)
    inner = rng.random(int(keep.sum())) < 0.8
    u, m, r = train.users[keep], train.movies[keep], train.ratings[keep]
    matrix = UserItems.from_pairs(u[inner], m[inner], n_users, n_movies, r[inner])
    held = HeldOut.from_ratings(u[~inner], m[~inner], r[~inner], n_users, n_movies, threshold)
    candidates, scores = [], []
    for f, reg in grid:
        params = replace(base, factors=f, regularization=reg)
        model = fit_ials(matrix, params, device=device)
        score = evaluate_rankers({"c": factor_ranker(model.user_factors, model.item_factors, matrix)}, matrix, held)[
            "c"
        ]
        ndcg = score.metrics["ndcg_at_10"]
        scores.append(score)
        candidates.append(
            {"factors": f, "regularization": reg, "inner_ndcg_at_10": ndcg, "fit_seconds": model.fit_seconds}
        )
        log(f"inner split: factors {f}, regularization {reg:g}: NDCG@10 {ndcg:.4f} ({model.fit_seconds:.1f} s)")
    best = max(range(len(grid)), key=lambda i: candidates[i]["inner_ndcg_at_10"])  # ties: the first listed
    if best != 0:
        # the first candidate is the default: another replaces it only when clearly better, not by noise
        versus = compare(scores[best], scores[0], z=noise_z)
        if versus.gap <= noise_z * versus.standard_error:
            log(
                f"factors {grid[best][0]}, regularization {grid[best][1]:g} is not better than the first candidate "
                f"beyond noise (gap {versus.gap:+.4f} +/- {versus.standard_error:.4f}): keeping the first"
            )
            best = 0
    for i, candidate in enumerate(candidates):
        candidate["chosen"] = i == best
    return Selection(replace(base, factors=grid[best][0], regularization=grid[best][1]), candidates, len(users))


@dataclass
class RankingTraining:
    """The held-out fit and its scores, and the fit on everything that gets published."""

    evaluation_model: IALSModel
    published_model: IALSModel
    published_seen: UserItems
    scores: dict[str, RankingScores]  # "ranking_model", "most_popular"
    comparison: Comparison
    selection: Selection
    seconds: dict[str, float] = field(default_factory=dict)  # wall time of each stage

    @property
    def metrics(self) -> dict[str, float]:
        out = {f"val_{name}": float(v) for name, v in self.scores["ranking_model"].metrics.items()}
        out.update({f"popular_{name}": float(v) for name, v in self.scores["most_popular"].metrics.items()})
        out.update(
            ndcg_gap=self.comparison.gap,
            ndcg_gap_se=self.comparison.standard_error,
            eval_fit_seconds=self.evaluation_model.fit_seconds,
            fit_seconds=self.published_model.fit_seconds,
        )
        return out


def train_ranking_model(
    train: Ratings,
    val: Ratings,
    n_users: int,
    n_movies: int,
    params: IALSParams | None = None,
    *,
    device: str | torch.device = "cpu",
    threshold: float = 4.0,
    k: int = 10,
    noise_z: float = 2.0,
    factors: Sequence[int] | None = None,
    regularization: Sequence[float] | None = None,
    log: Callable[[str], None] = lambda message: None,
    refit: Ratings | None = None,
    seen: Ratings | None = None,
) -> RankingTraining:
    """Fit on ``train``, score on ``val`` beside most-popular, then refit on both for publishing.

    ``noise_z``: how many standard errors of the paired per-user NDCG gap count as noise
    in the comparison with most-popular (:class:`Comparison`). ``factors`` and
    ``regularization`` (default: ``params``' own) are the candidates :func:`select_params` compares."""
    clock = time.perf_counter()
    seconds = {}

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = now - clock
        clock = now

    params = params or IALSParams()
    selection = select_params(
        train,
        n_users,
        n_movies,
        params,
        factors or [params.factors],
        regularization or [params.regularization],
        threshold=threshold,
        noise_z=noise_z,
        device=device,
        log=log,
    )
    params = selection.params
    lap("choosing the capacity on an inner split")
    if selection.candidates:
        log(
            f"chose factors {params.factors}, regularization {params.regularization:g} on an inner split of "
            f"the training data ({selection.inner_users:,} users)"
        )
    train_m = UserItems.from_pairs(train.users, train.movies, n_users, n_movies, train.ratings)
    held = HeldOut.from_ratings(val.users, val.movies, val.ratings, n_users, n_movies, threshold)

    def progress(stage: str):
        return lambda it, seconds: log(f"{stage}: ALS iteration {it}/{params.iterations} ({seconds:.2f} s)")

    held_out_fit = fit_ials(train_m, params, device=device, on_iteration=progress("held-out fit (training split)"))
    lap("held-out fit (training split)")
    scores = evaluate_rankers(
        {
            "ranking_model": factor_ranker(held_out_fit.user_factors, held_out_fit.item_factors, train_m),
            "most_popular": popularity_ranker(train_m),
        },
        train_m,
        held,
        k,
    )
    comparison = compare(scores["ranking_model"], scores["most_popular"], k, z=noise_z)
    lap("evaluation on the validation split (top-10, most popular)")
    log(f"held-out fit: {comparison.describe(k)} over {scores['ranking_model'].metrics['users_evaluated']:,} users")
    fit_on = refit if refit is not None else train.concat(val)
    fit_m = UserItems.from_pairs(fit_on.users, fit_on.movies, n_users, n_movies, fit_on.ratings)
    published = fit_ials(fit_m, params, device=device, on_iteration=progress("published fit (training + validation)"))
    lap("published fit (training + validation)")
    if seen is not None:
        fit_m = UserItems.from_pairs(seen.users, seen.movies, n_users, n_movies, seen.ratings)
    return RankingTraining(held_out_fit, published, fit_m, scores, comparison, selection, seconds)
