"""The ranking model's evidence: the candidate and the published model ranked for the same users.

* on the published model's held-back set, the candidate's published fit (each model masks what it has seen
  except the held-back pairs, which neither trained on);
* on the candidate's validation ratings the published model never trained on ("fresh"), both held-out fits;
* for a re-keyed export (``lineage.py``), each held-back user folded into both models from half of their
  held-back ratings and both lists scored on the other half.

NDCG@10 with the paired per-user gap's standard error, as :class:`~recsys_assets.core.release.decision.Evidence`.
"""

from collections.abc import Callable

import numpy as np

from recsys_assets.core.ids import IdMapping
from recsys_assets.core.ranking.blend import blend_top_n
from recsys_assets.core.ranking.evaluate import Ranker
from recsys_assets.core.ranking.interactions import UserItems
from recsys_assets.core.ranking.metrics import HeldOut, paired_gap, ranking_metrics
from recsys_assets.core.release.decision import FRESH, Evidence
from recsys_assets.core.release.lineage import Lineage, fold_in_halves

FOLDED = "held-back ratings of the published model's users, each user folded in from their other half"


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
    return _ndcg_evidence(ranked, theirs, held, k, metric=metric, n=int(fresh.sum()), on=FRESH)


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


def folded_ndcg_evidence(candidate, current, movies: IdMapping, *, threshold: float = 4.0, k: int = 10, seed: int = 0):
    """A re-keyed export's evidence: the published model's held-back users folded into both ranking models
    (``RankingModel``s) from one half of their held-back ratings, both lists scored on the other half (in the
    candidate's movie indices ``movies``; a movie the candidate lacks is left out, one it cannot list a miss)."""
    held = current.heldback
    metric = f"held-back NDCG@{k} (users folded in)"
    if held is None or not len(held):
        return Evidence(metric, float("nan"), float("nan"), 0, lower_is_better=False, on=FOLDED)
    fold, score = fold_in_halves(held.users, seed)
    score &= movies.known(held.movies)
    targets, rows = np.unique(held.users[score], return_inverse=True)
    target = HeldOut.from_ratings(
        rows, movies.encode(held.movies[score]), held.ratings[score], len(targets), len(movies), threshold
    )
    if not len(target.users):
        return Evidence(metric, float("nan"), float("nan"), 0, lower_is_better=False, on=FOLDED)
    lists = [
        _folded_top(model, held, fold, targets, target.users, k=k, movies=movies) for model in (candidate, current)
    ]
    return _ndcg_evidence(*lists, target, k, metric=metric, n=int(score.sum()), on=FOLDED)


def _folded_top(model, held, fold: np.ndarray, targets: np.ndarray, users: np.ndarray, *, k: int, movies: IdMapping):
    """``model``'s top ``k`` (in ``movies`` indices, -1: a movie ``movies`` lacks) for the held-back users
    ``targets[users]``, each folded in from their ``fold`` ratings that ``model`` knows."""
    given = fold & model.movies.known(held.movies) & np.isin(held.users, targets)
    rows = np.searchsorted(targets, held.users[given])
    seen = UserItems.from_pairs(
        rows, model.movies.encode(held.movies[given]), len(targets), len(model.movies), held.ratings[given]
    )
    top = model.top_n(users, k, seen=seen).movies
    return np.where(top >= 0, movies.encode(model.movies.ids[np.maximum(top, 0)], unknown=-1), -1)


def ranking_evidence_list(
    current, candidate, result, data, *, users: IdMapping, movies: IdMapping, found: Lineage, threshold: float
):
    """Every comparison the lineage allows, for the candidate ``RankingModel`` ``candidate`` (its training
    result ``result``, its ``data``: the training and validation ``Ratings``) against the published ``current``."""
    train, val = data
    if found.kind == "rekeyed":
        return [folded_ndcg_evidence(candidate, current, movies, threshold=threshold)]
    if found.kind != "same":
        return []
    evidence = []
    if current.heldback is not None and len(current.heldback):
        evidence.append(
            heldback_ndcg_evidence(
                current,
                result.published_ranker,
                result.published_seen,
                users,
                movies,
                current.heldback,
                threshold=threshold,
            )
        )
    seen = UserItems.from_pairs(train.users, train.movies, len(users), len(movies), train.ratings)
    evidence.append(
        fresh_ndcg_evidence(current.held_out(), result.evaluation_ranker(seen), users, movies, val, threshold=threshold)
    )
    return evidence
