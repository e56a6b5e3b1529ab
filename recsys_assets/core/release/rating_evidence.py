"""The rating model's evidence: the candidate and the published model scored on the same ratings.

* on the published model's held-back set (``core/heldback.py``), the candidate's published weights;
* on the candidate's validation ratings the published model never trained on ("fresh"), both held-out fits;
* for a re-keyed export (``lineage.py``), each held-back user folded into both models from half of their
  held-back ratings (a ridge fit on the fixed movie weights) and both scored on the other half.

``current`` is the published model as a :class:`~recsys_assets.core.rating.predictor.RatingPredictor`
(its ``info`` holds the held-back set and the held-out fit's weights).
"""

import numpy as np

from recsys_assets.core.ids import IdMapping
from recsys_assets.core.rating.predictor import RatingPredictor
from recsys_assets.core.release.decision import DataSize, Evidence, rmse_evidence
from recsys_assets.core.release.lineage import Lineage, fold_in_halves

HELD_BACK = "ratings the published model held back (no published fit trained on them)"
FOLDED = "held-back ratings of the published model's users, each user folded in from their other half"
MAX_FOLDED_USERS = 2_000


def rating_evidence(model, val, users: IdMapping, movies: IdMapping, current: RatingPredictor) -> Evidence:
    """The candidate ``model`` (a ``BiasedMF``) and ``current``, scored on the validation ratings (a
    ``MovieRatingDataset``) that ``current`` never trained on (clamped predictions)."""
    import torch

    val_users, val_movies, ratings = val.arrays()
    raw_users, raw_movies = users.ids[val_users], movies.ids[val_movies]
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        candidate = model(val.users.to(device), val.movies.to(device)).clamp(*current.rating_range).cpu().numpy()
    if current.seen_matrix is None:  # a file without its training pairs: no rating is known to be fresh
        fresh = np.zeros(len(ratings), bool)
    else:
        fresh = ~current.seen_matrix.contains(
            current.users.encode(raw_users, unknown=-1), current.movies.encode(raw_movies, unknown=-1)
        )
    return rmse_evidence(candidate, current.predict(raw_users, raw_movies), ratings.astype(np.float64), fresh)


def published_size(current: RatingPredictor) -> DataSize:
    """The data size of the published rating model."""
    recorded = DataSize.from_dict(current.info.get("config", {}))
    if recorded is not None:
        return recorded
    ratings = current.seen_matrix.nnz if current.seen_matrix is not None else 0
    return DataSize(len(current.users), len(current.movies), ratings)


def heldback_evidence(candidate: RatingPredictor, current: RatingPredictor) -> Evidence | None:
    """Both scored on ``current``'s held-back ratings (raw ids through each model's own mappings); None
    when its file has none."""
    held = current.info.get("heldback")
    if held is None or not len(held):
        return None
    return rmse_evidence(
        candidate.predict(held.users, held.movies),
        current.predict(held.users, held.movies),
        held.ratings.astype(np.float64),
        np.ones(len(held), bool),
        metric="held-back RMSE",
        on=HELD_BACK,
    )


def folded_evidence(candidate: RatingPredictor, current: RatingPredictor, seed: int = 0) -> Evidence | None:
    """A re-keyed export's evidence: per held-back user of ``current``, both models fold the user in from
    one half of their held-back ratings and predict the other half. None without a held-back set."""
    held = current.info.get("heldback")
    if held is None or not len(held):
        return None
    fold, score = fold_in_halves(held.users, seed)
    chosen = np.unique(held.users[score])[:MAX_FOLDED_USERS]
    mine, theirs, truth = [], [], []
    for user in chosen:
        given, asked = fold & (held.users == user), score & (held.users == user)
        for model, out in ((candidate, mine), (current, theirs)):
            out.append(
                model.fold_in_ratings(held.movies[given], held.ratings[given].astype(np.float64), held.movies[asked])
            )
        truth.append(held.ratings[asked])
    if not truth:
        return None
    ratings = np.concatenate(truth).astype(np.float64)
    return rmse_evidence(
        np.concatenate(mine),
        np.concatenate(theirs),
        ratings,
        np.ones(len(ratings), bool),
        metric="held-back RMSE (users folded in)",
        on=FOLDED,
    )


def held_out_fit(current: RatingPredictor) -> RatingPredictor:
    """The published model's held-out fit (training split only, kept in its file), which the candidate's
    held-out fit is compared with on fresh ratings (like with like: the refit saw more data); else ``current``."""
    state = current.info.get("evaluation_state")
    if state is None:
        return current
    return RatingPredictor.from_state(
        state, current.users, current.movies, rating_range=current.rating_range, seen=current.seen_matrix
    )


def rating_evidence_list(
    model,
    published_state: dict,
    val,
    current: RatingPredictor,
    *,
    mappings: tuple[IdMapping, IdMapping],
    found: Lineage,
) -> list[Evidence]:
    """Every comparison the lineage allows: ``model`` is the held-out fit, ``published_state`` the weights
    that would go live; ``mappings``: the candidate's users and movies."""
    users, movies = mappings
    candidate = RatingPredictor.from_state(published_state, users, movies, rating_range=current.rating_range)
    if found.kind == "rekeyed":
        folded = folded_evidence(candidate, current)
        return [folded] if folded is not None else []
    if found.kind != "same":
        return []
    held = heldback_evidence(candidate, current)
    evidence = [held] if held is not None else []
    evidence.append(rating_evidence(model, val, users, movies, held_out_fit(current)))
    return evidence
