"""Choosing the ranking candidate on an inner split of the training data (never on the reported figures).

The candidates are iALS alone, the item-item model alone, most popular, and blends of them
(:mod:`blend`). The best NDCG@10 on the inner split wins (on a small export, pooled over several inner
splits, :class:`InnerFold`, so that the choice follows the data rather than one split's draw); most popular is a candidate, so on an
export where personalisation does not beat popularity the choice is most popular (or a blend
close to it) instead of a model that loses to it. Then the diversity setting: the popularity penalty one
step below the largest whose NDCG@10 stays within ``diversity`` standard errors of the winner's (the paired
per-user gap), which widens the catalogue the lists draw from at no measurable cost. One step below,
because past some penalty the lists fall off a cliff (the most relevant movies are the popular ones), and
the models fitted on more ratings than the inner splits hold can meet it a step sooner.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from recsys_assets.core.ranking.blend import Components, Weights, blend_top_n_many
from recsys_assets.core.ranking.interactions import UserItems
from recsys_assets.core.ranking.metrics import HeldOut, RankingScores, paired_gap, ranking_metrics

IALS_ALONE, POPULAR = Weights(1.0, 0.0, 0.0), Weights(0.0, 0.0, 1.0)
PENALTIES = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0)  # popularity penalties the diversity setting tries, smallest first


def candidate_weights(has_item_item: bool) -> list[Weights]:
    """iALS alone first (the default), then item-item, their mixes, each with a popularity prior, and most popular."""
    mixes = [(1.0, 0.0), (0.0, 1.0), (0.75, 0.25), (0.5, 0.5), (0.25, 0.75)] if has_item_item else [(1.0, 0.0)]
    grid = [Weights(f, i, p) for f, i in mixes for p in (0.0, 0.1, 0.25, 0.5)]
    return [*grid, POPULAR]


@dataclass
class InnerFold:
    """One inner split: the parts fitted on its training side, that side's ratings, and its held-out ones."""

    parts: Components
    seen: UserItems
    held: HeldOut


@dataclass
class BlendChoice:
    """The chosen weights and every candidate's inner NDCG@10 and coverage."""

    weights: Weights
    candidates: list[dict] = field(default_factory=list)
    penalty: float = 0.0
    min_ratings: int = 1  # the fewest training ratings a listed movie needs (choose_support)
    support: list[dict] = field(default_factory=list)  # every support candidate's inner NDCG@10
    fallback: str = ""  # why these weights replaced the inner splits' choice (it lost to most popular), or ""


def _score(folds: Sequence[InnerFold], weights, k: int, max_users: int, seed: int) -> list[RankingScores]:
    """Each of ``weights``' scores, pooled over the folds (:func:`_pooled`)."""
    return _pooled(
        folds,
        lambda fold, users: [t.movies for t in blend_top_n_many(fold.parts, weights, fold.seen, users, k)],
        k,
        max_users,
        seed,
    )


def _pooled(folds: Sequence[InnerFold], lists: Callable, k: int, max_users: int, seed: int) -> list[RankingScores]:
    """The scores of each of the top-``k`` lists ``lists(fold, users)`` gives, pooled over the folds: a user's NDCG
    is the mean over the folds that score them (a sample of at most ``max_users`` per fold), one row per user in
    user order, so a paired gap between two candidates compares the same users and counts each once."""
    per_fold, scored = [], []
    for fold in folds:
        users = fold.held.users
        if len(users) > max_users:
            users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
        counts = fold.seen.movie_counts()
        per_fold.append([ranking_metrics(top, users, fold.held, k, counts) for top in lists(fold, users)])
        scored.append(users[fold.held.relevant.counts()[users] > 0])  # the rows ranking_metrics keeps
    ids, where = np.unique(np.concatenate(scored), return_inverse=True)
    times = np.bincount(where, minlength=len(ids))
    pooled = []
    for scores in zip(*per_fold, strict=True):
        ndcg = np.bincount(where, np.concatenate([s.ndcg_per_user for s in scores]), len(ids)) / np.maximum(times, 1)
        metrics = {name: float(np.mean([s.metrics[name] for s in scores])) for name in scores[0].metrics}
        metrics[f"ndcg_at_{k}"] = float(ndcg.mean()) if len(ndcg) else 0.0
        metrics["users_evaluated"] = len(ids)
        pooled.append(RankingScores(metrics, ndcg))
    return pooled


def choose_blend(
    folds: Sequence[InnerFold],
    *,
    diversity: float = 1.0,
    k: int = 10,
    max_users: int = 5_000,
    seed: int = 0,
    log: Callable[[str], None] = lambda message: None,
) -> BlendChoice:
    """The best candidate on the inner folds' held-out ratings, then the popularity penalty one step below the largest
    within noise."""
    if not folds:
        raise ValueError("choose_blend needs at least one inner fold")
    grid = candidate_weights(all(f.parts.item_item is not None for f in folds))
    if any(f.parts.user_factors is None for f in folds):
        grid = [w for w in grid if not w.factors]
    scores = _score(folds, grid, k, max_users, seed)
    ndcg = [s.metrics[f"ndcg_at_{k}"] for s in scores]
    best = int(np.argmax(ndcg))
    candidates = [_row(w, s, k) for w, s in zip(grid, scores, strict=True)]
    chosen, penalty = grid[best], 0.0
    if diversity > 0 and chosen != POPULAR:
        penalized = [replace(chosen, popularity=round(chosen.popularity - p, 6)) for p in PENALTIES]
        within = []
        for p, w, s in zip(PENALTIES, penalized, _score(folds, penalized, k, max_users, seed), strict=True):
            gap, se = paired_gap(s.ndcg_per_user, scores[best].ndcg_per_user)
            within.append(gap >= -diversity * se)
            candidates.append({**_row(w, s, k), "penalty": p, "within_noise": within[-1]})
        step = max((i for i, ok in enumerate(within) if ok), default=-1) - 1  # one below the largest within noise
        if step >= 0:
            chosen, penalty = penalized[step], PENALTIES[step]
    for c in candidates:
        c["chosen"] = c["weights"] == chosen.to_dict()
    log(
        f"inner split{'s' if len(folds) > 1 else ''} ({len(scores[0].ndcg_per_user):,} users over "
        f"{len(folds)}): chose {chosen.describe()} (NDCG@{k} {ndcg[best]:.4f} before the popularity penalty "
        f"{penalty:g}); iALS alone {ndcg[0]:.4f}, most popular {ndcg[-1]:.4f}"
    )
    return BlendChoice(chosen, candidates, penalty)


SUPPORT = (1, 2, 3, 5, 10, 20)  # the fewest training ratings a listed movie may have: the candidates


def kept(passes: np.ndarray, k: int, then: np.ndarray | None = None) -> np.ndarray:
    """Per row of ``passes`` (over a ranked pool, best first), the positions of the ``k`` listed: the
    best-ranked that pass, the best-ranked others filling a row short of them (those where ``then`` holds
    first); in ranking order either way (a movie is left out, never moved). The lists' rule, and the rule the
    evidence is chosen under."""
    tier = (~passes).astype(np.int8) if then is None else np.where(passes, 0, np.where(then, 1, 2)).astype(np.int8)
    return np.sort(np.argsort(tier, axis=-1, kind="stable")[..., : min(k, passes.shape[-1])], axis=-1)


def well_rated(movies: np.ndarray, counts: np.ndarray, min_ratings: int) -> np.ndarray:
    """Whether each of ``movies`` (indices, -1 for none) has at least ``min_ratings`` ratings (``counts`` per movie)."""
    return (movies >= 0) & (counts[np.maximum(movies, 0)] >= min_ratings)


def supported(movies: np.ndarray, counts: np.ndarray, min_ratings: int, k: int) -> np.ndarray:
    """:func:`kept` for ``movies`` (a ranked pool, -1 past its end): those with at least ``min_ratings`` ratings."""
    return kept(well_rated(movies, counts, min_ratings), k)


def choose_support(
    folds: Sequence[InnerFold],
    weights: Weights,
    *,
    k: int = 10,
    pool: int = 30,
    max_users: int = 5_000,
    seed: int = 0,
    log: Callable[[str], None] = lambda message: None,
) -> tuple[int, list[dict]]:
    """The evidence a listed movie needs (its fewest training ratings, of ``SUPPORT``), chosen on the inner folds:
    the largest whose pooled NDCG@k stays within half a standard error of the best one's (the paired per-user gap),
    so thin evidence is left out where the figures cannot tell the difference. Each candidate's row is returned."""

    def lists(fold, users):
        top = blend_top_n_many(fold.parts, [weights], fold.seen, users, pool)[0].movies
        rows, counts = np.arange(len(users))[:, None], fold.seen.movie_counts()
        return [top[rows, supported(top, counts, m, k)] for m in SUPPORT]

    scores = _pooled(folds, lists, k, max_users, seed)
    ndcg = [s.ndcg_per_user for s in scores]
    best = int(np.argmax([n.mean() for n in ndcg]))
    rows, chosen = [], SUPPORT[best]
    for i, m in enumerate(SUPPORT):
        gap, se = paired_gap(ndcg[i], ndcg[best])
        within = bool(gap >= -0.5 * se)
        if within and m > chosen:
            chosen = m
        rows.append(
            {
                "min_ratings": m,
                "inner_ndcg_at_10": float(ndcg[i].mean()),
                "inner_coverage": scores[i].metrics["coverage"],
                "within_noise": within,
            }
        )
    for row in rows:
        row["chosen"] = row["min_ratings"] == chosen
    log(
        f"support: a listed movie needs at least {chosen} training rating(s) (inner NDCG@{k} "
        f"{ndcg[SUPPORT.index(chosen)].mean():.4f}; 1 rating: {ndcg[0].mean():.4f})"
    )
    return chosen, rows


def _row(w: Weights, s: RankingScores, k: int) -> dict:
    return {
        "weights": w.to_dict(),
        "blend": w.describe(),
        "inner_ndcg_at_10": float(s.metrics[f"ndcg_at_{k}"]),
        "inner_coverage": float(s.metrics["coverage"]),
    }
