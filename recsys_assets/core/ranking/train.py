"""Training the ranking model: choose nothing on the figures reported, publish a model fit on everything.

1. Choose the model's capacity (factors, regularization) for this export on an
   inner split of the training split (:func:`select_params`): the best setting
   differs by data set (128 factors on MovieLens, 16 on the synthetic sample).
2. On the same inner split, choose the candidate: iALS, item-item, most popular or a
   blend, and the diversity penalty (:mod:`choose`).
3. Fit the chosen parts on the training split and score them on the validation split
   beside most-popular (:func:`compare`): these are the reported figures and the
   publishing rule's evidence.
4. Fit again on training + validation with the same settings (iALS warm-started from
   step 3): that model is published, so recommendations use every rating the pipeline saw.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from recsys_assets.core.ranking.blend import Components, blend_ranker, blend_top_n_many
from recsys_assets.core.ranking.choose import (
    IALS_ALONE,
    POPULAR,
    BlendChoice,
    InnerFold,
    choose_blend,
    choose_support,
)
from recsys_assets.core.ranking.evaluate import Comparison, compare, evaluate_rankers, factor_ranker
from recsys_assets.core.ranking.ials import IALSModel, IALSParams, fit_ials
from recsys_assets.core.ranking.interactions import UserItems
from recsys_assets.core.ranking.itemitem import ItemItemModel, fit_item_item
from recsys_assets.core.ranking.metrics import HeldOut, RankingScores, profile_weights, ranking_metrics
from recsys_assets.core.ranking.params import ItemItemParams


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
    inner: "InnerSplit | None" = None
    inner_model: IALSModel | None = None  # the chosen setting's fit on the inner split


def select_params(
    train: Ratings,
    n_users: int,
    n_movies: int,
    base: IALSParams,
    factors: Sequence[int],
    regularization: Sequence[float],
    *,
    max_users: int = 10_000,
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
    inner = inner_split(train, n_users, n_movies, max_users=max_users, seed=seed, threshold=threshold)
    candidates, scores, models = [], [], []
    for f, reg in grid:
        params = replace(base, factors=f, regularization=reg)
        model = fit_ials(inner.matrix, params, device=device)
        ranker = factor_ranker(model.user_factors, model.item_factors, inner.matrix)
        score = evaluate_rankers({"c": ranker}, inner.matrix, inner.held)["c"]
        ndcg = score.metrics["ndcg_at_10"]
        scores.append(score)
        models.append(model)
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
    params = replace(base, factors=grid[best][0], regularization=grid[best][1])
    return Selection(params, candidates, len(inner.users), inner, models[best])


@dataclass
class InnerSplit:
    """An 80/20 split of (a sample of users of) the training split: where every choice is made."""

    matrix: UserItems
    held: HeldOut
    users: np.ndarray


def inner_split(
    train: Ratings, n_users: int, n_movies: int, *, max_users: int = 10_000, seed: int = 0, threshold: float = 4.0
) -> InnerSplit:
    """At most ``max_users`` users' training ratings (a random sample), split 80/20 at random."""
    rng = np.random.default_rng(seed)
    users = np.unique(train.users)
    if len(users) > max_users:
        users = rng.choice(users, max_users, replace=False)
    keep = np.isin(train.users, users)
    inner = rng.random(int(keep.sum())) < 0.8
    u, m, r = train.users[keep], train.movies[keep], train.ratings[keep]
    matrix = UserItems.from_pairs(u[inner], m[inner], n_users, n_movies, r[inner])
    held = HeldOut.from_ratings(u[~inner], m[~inner], r[~inner], n_users, n_movies, threshold)
    return InnerSplit(matrix, held, users)


@dataclass
class RankingTraining:
    """The held-out fits and their scores, the blend chosen on the inner split, and the fits that get published."""

    evaluation_model: IALSModel
    published_model: IALSModel
    published_seen: UserItems
    scores: dict[str, RankingScores]  # "ranking_model" (the chosen blend), "ials_alone", "most_popular"
    comparison: Comparison
    selection: Selection
    seconds: dict[str, float] = field(default_factory=dict)  # wall time of each stage
    blend: BlendChoice = field(default_factory=lambda: BlendChoice(IALS_ALONE))
    evaluation_item_item: ItemItemModel | None = None
    published_item_item: ItemItemModel | None = None

    def evaluation_ranker(self, seen: UserItems):
        """The chosen blend of the held-out fits (training split only) as a ranker over ``seen``."""
        parts = _components(self.evaluation_model, self.evaluation_item_item, seen.movie_counts())
        return blend_ranker(parts, self.blend.weights, seen)

    def published_ranker(self, seen: UserItems):
        """The chosen blend of the published fits as a ranker over ``seen`` (popularity from what they fitted)."""
        parts = _components(self.published_model, self.published_item_item, self.published_seen.movie_counts())
        return blend_ranker(parts, self.blend.weights, seen)

    @property
    def metrics(self) -> dict[str, float]:
        out = {f"val_{name}": float(v) for name, v in self.scores["ranking_model"].metrics.items()}
        out.update({f"popular_{name}": float(v) for name, v in self.scores["most_popular"].metrics.items()})
        if "ials_alone" in self.scores:
            out.update({f"ials_{name}": float(v) for name, v in self.scores["ials_alone"].metrics.items()})
        out.update(
            ndcg_gap=self.comparison.gap,
            ndcg_gap_se=self.comparison.standard_error,
            eval_fit_seconds=self.evaluation_model.fit_seconds,
            fit_seconds=self.published_model.fit_seconds,
        )
        if self.published_item_item is not None:
            out["item_item_fit_seconds"] = self.published_item_item.fit_seconds
        return out


@dataclass(frozen=True)
class CandidateSettings:
    """What the candidates are: the iALS capacities to compare, the item-item model, the diversity setting."""

    factors: Sequence[int] | None = None
    regularization: Sequence[float] | None = None
    item_item: ItemItemParams = field(default_factory=ItemItemParams)
    diversity: float = 1.0
    refit_iterations: int | None = None  # sweeps of the published refit (warm-started); default a third, >= 3
    blend: bool = True  # False: iALS alone (no candidates compared)
    max_eval_users: int = 30_000  # the validation figures come from at most this many users (a random sample)
    inner_folds: int | None = None  # inner splits the blend is chosen on; None: 3 below FEW_USERS users, else 1
    support: bool = True  # choose the fewest ratings a listed movie needs on the inner splits (False: 1)
    fallback: bool = True  # a choice that loses to most popular on validation: publish the best that does not

    def __post_init__(self):
        if self.inner_folds is not None and not 1 <= self.inner_folds <= 10:
            raise ValueError(f"inner_folds must be between 1 and 10 (or None: automatic), got {self.inner_folds}")


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
    candidates: CandidateSettings | None = None,
    log: Callable[[str], None] = lambda message: None,
    refit: Ratings | None = None,
    seen: Ratings | None = None,
) -> RankingTraining:
    """Choose on an inner split, fit on ``train``, score on ``val`` beside most-popular, refit on both.

    ``noise_z``: how many standard errors of the paired per-user NDCG gap count as noise
    in the comparison with most-popular (:class:`Comparison`). ``factors`` and
    ``regularization`` (default: ``params``' own) are the capacities :func:`select_params` compares;
    ``candidates`` sets the item-item model and the diversity setting (:mod:`choose`)."""
    settings = candidates or CandidateSettings(factors, regularization)
    clock = [time.perf_counter()]
    seconds = {}

    def lap(stage: str) -> None:
        now = time.perf_counter()
        seconds[stage], clock[0] = now - clock[0], now

    params = params or IALSParams()
    selection = select_params(
        train,
        n_users,
        n_movies,
        params,
        settings.factors or factors or [params.factors],
        settings.regularization or regularization or [params.regularization],
        threshold=threshold,
        noise_z=noise_z,
        device=device,
        log=log,
    )
    params = selection.params
    lap("choosing the capacity on an inner split")
    blend = _choose(train, n_users, n_movies, selection, settings, threshold=threshold, device=device, log=log)
    lap("choosing the blend on an inner split")
    train_m = UserItems.from_pairs(train.users, train.movies, n_users, n_movies, train.ratings)
    held = HeldOut.from_ratings(val.users, val.movies, val.ratings, n_users, n_movies, threshold)

    def progress(stage: str):
        return lambda it, seconds: log(f"{stage}: ALS iteration {it}/{params.iterations} ({seconds:.2f} s)")

    held_out_fit = fit_ials(train_m, params, device=device, on_iteration=progress("held-out fit (training split)"))
    held_items = fit_item_item(train_m, settings.item_item) if blend.weights.items else None
    lap("held-out fit (training split)")
    parts = _components(held_out_fit, held_items, train_m.movie_counts())
    users = held.users
    if len(users) > settings.max_eval_users:  # a large export: a random sample of users bounds the cost
        users = np.sort(np.random.default_rng(0).choice(users, settings.max_eval_users, replace=False))
    named = {"ranking_model": blend.weights, "ials_alone": IALS_ALONE, "most_popular": POPULAR}
    unique = list(dict.fromkeys(named.values()))
    tops = dict(zip(unique, blend_top_n_many(parts, unique, train_m, users, k), strict=True))
    counts, weights = train_m.movie_counts(), profile_weights(train_m, users, held)  # a bot block weighs one user
    scores = {name: ranking_metrics(tops[w].movies, users, held, k, counts, weights) for name, w in named.items()}
    comparison = compare(scores["ranking_model"], scores["most_popular"], k, z=noise_z)
    if comparison.loses_beyond_noise and settings.fallback:  # never below most popular: the best that does not
        blend, comparison = _fall_back(blend, scores, comparison, k=k, noise_z=noise_z, log=log)
    lap("evaluation on the validation split (top-10, most popular)")
    log(f"held-out fit: {comparison.describe(k)} over {scores['ranking_model'].metrics['users_evaluated']:,} users")
    fit_on = refit if refit is not None else train.concat(val)
    fit_m = UserItems.from_pairs(fit_on.users, fit_on.movies, n_users, n_movies, fit_on.ratings)
    published, published_items = _published_fit(fit_m, held_out_fit, settings, device=device, progress=progress)
    lap("published fit (training + validation)")
    if seen is not None:  # every rating of the export, never recommended back (the held-back ones too)
        fit_m = UserItems.from_pairs(seen.users, seen.movies, n_users, n_movies, seen.ratings)
    return RankingTraining(
        held_out_fit, published, fit_m, scores, comparison, selection, seconds, blend, held_items, published_items
    )


def _fall_back(blend: BlendChoice, scores: dict, comparison, *, k: int, noise_z: float, log) -> tuple:
    """The chosen blend lost to most popular on the validation split beyond noise: iALS alone when it does
    not lose, else most popular itself (which cannot lose to itself). ``scores["ranking_model"]`` becomes the
    fallback's, so the figures and the release's evidence describe what is published."""
    lost = comparison.describe(k)
    name, weights = "most_popular", POPULAR
    if (
        blend.weights != IALS_ALONE
        and not compare(scores["ials_alone"], scores["most_popular"], k, z=noise_z).loses_beyond_noise
    ):
        name, weights = "ials_alone", IALS_ALONE
    scores["ranking_model"] = scores[name]
    why = f"the chosen blend ({blend.weights.describe()}) lost on the validation split: {lost}; publishing {weights.describe()} instead"
    log(why)
    chosen = replace(blend, weights=weights, fallback=why)
    return chosen, compare(scores["ranking_model"], scores["most_popular"], k, z=noise_z)


def _published_fit(matrix: UserItems, held_out_fit, settings, *, device, progress):
    """The published iALS fit (warm-started from the held-out fit, fewer iterations) and item-item model."""
    params = held_out_fit.params
    quick = replace(params, iterations=settings.refit_iterations or max(3, params.iterations // 3))
    name = "published fit (training + validation)"
    published = fit_ials(matrix, quick, device=device, on_iteration=progress(name), warm_start=held_out_fit)
    return replace(published, params=params), fit_item_item(matrix, settings.item_item)


def _components(fit: IALSModel, items: ItemItemModel | None, movie_counts: np.ndarray) -> Components:
    """The blend's parts: iALS factors, the item-item weights (and how they read a rating), popularity."""
    if items is None:
        return Components(fit.user_factors, fit.item_factors, None, movie_counts)
    return Components(fit.user_factors, fit.item_factors, items.weights, movie_counts, items.rating_exponent)


FEW_USERS = 3_000  # below this many users in the training split the blend is chosen on 3 inner splits, not 1


def _choose(train, n_users, n_movies, selection, settings, *, threshold, device, log) -> BlendChoice:
    """The blend, chosen on the capacity's inner split (a fresh one when the capacity was fixed) and, on a
    small export, on more inner splits (other seeds): one split of a few hundred users is a noisy judge."""
    if not settings.blend:
        return BlendChoice(IALS_ALONE)
    n_folds = settings.inner_folds or (3 if len(np.unique(train.users)) < FEW_USERS else 1)
    folds = []
    for fold in range(n_folds):
        reuse = fold == 0  # the capacity's own inner split (seed 0) and its fit, when it made them
        inner = (
            selection.inner
            if reuse and selection.inner
            else inner_split(train, n_users, n_movies, threshold=threshold, seed=fold)
        )
        model = (
            selection.inner_model
            if reuse and selection.inner_model
            else fit_ials(inner.matrix, selection.params, device=device)
        )
        items = fit_item_item(inner.matrix, settings.item_item)
        if items is not None:
            log(f"item-item candidate: {items.method} ({items.fit_seconds:.1f} s on inner split {fold + 1}/{n_folds})")
        parts = _components(model, items, inner.matrix.movie_counts())
        folds.append(InnerFold(parts, inner.matrix, inner.held))
    choice = choose_blend(folds, diversity=settings.diversity, log=log)
    if settings.support:
        choice.min_ratings, choice.support = choose_support(folds, choice.weights, log=log)
    return choice
