"""Which movies are alike: the neighbours behind ``recsys similar`` and the "because you rated" reason.

The item-item weights (:mod:`itemitem`) come first: they are learnt from who rated what together (and
how high, for EASE), so Toy Story's neighbours are Toy Story 2 and other Pixar films rather than whatever shares its
iALS direction. Pairs the sparse weights do not hold are ordered by the cosine of the iALS movie
factors, and a model without item-item weights uses the cosine alone.
"""

from typing import TYPE_CHECKING

import numpy as np

from recsys_assets.core.ranking.interactions import UserItems
from recsys_assets.core.ranking.itemitem import pair_weights

if TYPE_CHECKING:
    import pandas as pd

LIKED = 4.0  # a reason names a movie the user rated at least this
# what a full genre match adds to a neighbour's similarity (the item-item part is scaled to (0, 4], the cosine
# to [-1, 1]): enough to lift a film of the same kind over a co-popular one of another, not to make genre alone
# decide (recsys similar with movies.csv; benchmarks/bench_similar.py measures it)
GENRE_WEIGHT = 2.0
# a reason needs a positive item-item weight (rated together, and highly) or factors this alike (cosine)
MIN_COSINE = 0.2


def _cosine(factors: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of the factors of movies ``a`` (m,) against ``b`` (n,): (m, n)."""
    fa, fb = factors[a].astype(np.float64), factors[b].astype(np.float64)
    norms = np.linalg.norm(fa, axis=1)[:, None] * np.linalg.norm(fb, axis=1)[None, :]
    return (fa @ fb.T) / np.maximum(norms, 1e-12)


def _symmetric(weights: UserItems, a: np.ndarray, b: np.ndarray, keys: np.ndarray | None) -> np.ndarray:
    """The larger of ``w[a, b]`` and ``w[b, a]`` (EASE and RP3beta are not symmetric), (m, n)."""
    forward = pair_weights(weights, a[:, None], b[None, :], keys)
    return np.maximum(forward, pair_weights(weights, b[None, :], a[:, None], keys))


def similarity(
    factors: np.ndarray | None,
    weights: UserItems | None,
    a: np.ndarray,
    b: np.ndarray,
    keys: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """How alike movies ``a`` and ``b`` are (m, n): item-item weight first, factor cosine to break ties; and
    whether that likeness means something (a positive weight, or no weight and a cosine of ``MIN_COSINE``:
    a negative weight argues against the pair).

    ``keys``: ``weights.keys()``, computed once by a caller that asks many times."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    cos = _cosine(factors, a, b) if factors is not None else np.zeros((len(a), len(b)))
    if weights is None:
        return cos, cos >= MIN_COSINE
    w = _symmetric(weights, a, b, keys)
    return _combine(w, cos), (w > 0) | ((w == 0) & (cos >= MIN_COSINE))


def _combine(w: np.ndarray, cos: np.ndarray) -> np.ndarray:
    """Positive weights scaled to (0, 4] plus the cosine (|cos| <= 1), so the strongest weights come first;
    a negative weight (EASE keeps them: a movie that argues against the other) ranks below every pair
    without one, whatever the other weights of the block."""
    top = float(w.max()) if w.size else 0.0
    positive = (np.maximum(w, 0.0) / top) * 4.0 if top > 0 else 0.0
    return positive + cos - 4.0 * (w < 0)


def genre_matrix(genres: "pd.Series", ids: np.ndarray) -> np.ndarray:
    """A (len(ids), genres) boolean matrix from genre strings by movie id (``"Animation|Comedy"``); a movie
    without genres gets an empty row."""
    import pandas as pd

    listed = pd.Series(genres).reindex(np.asarray(ids)).fillna("").astype(str)
    return listed.str.get_dummies(sep="|").to_numpy(dtype=bool).reshape(len(ids), -1)


def genre_likeness(genres: np.ndarray, movie: int) -> np.ndarray:
    """The Jaccard overlap of ``movie``'s genres with every movie's, from a (movies, genres) boolean matrix
    (0 where either has none)."""
    shared = genres.astype(np.float32) @ genres[movie].astype(np.float32)
    union = genres.sum(axis=1) + genres[movie].sum() - shared
    return np.where(union > 0, shared / np.maximum(union, 1), 0.0)


def neighbours(
    factors: np.ndarray | None, weights: UserItems | None, movie: int, k: int, bonus: np.ndarray | None = None
) -> tuple[np.ndarray, ...]:
    """The ``k`` movies most like ``movie`` and their similarity, best first; ``bonus`` (one value per movie,
    e.g. ``GENRE_WEIGHT`` times :func:`genre_likeness`) is added before they are ranked."""
    n = len(factors) if factors is not None else (weights.n_movies if weights is not None else 0)
    cos = np.zeros(n)
    if factors is not None:  # one movie against all: a matrix-vector product, no (n, k) copies per request
        norms = np.linalg.norm(factors, axis=1).astype(np.float64)
        cos = (factors @ factors[movie]).astype(np.float64) / np.maximum(norms * norms[movie], 1e-12)
    sims = cos if weights is None else _combine(_symmetric(weights, np.array([movie]), np.arange(n), None)[0], cos)
    if bonus is not None:
        sims = sims + bonus
    sims[movie] = -np.inf
    k = min(k, n - 1)
    top = np.argpartition(-sims, k - 1)[:k] if k > 0 else np.empty(0, dtype=np.int64)
    top = top[np.argsort(-sims[top], kind="stable")]
    return top, sims[top]


def reasons(
    factors: np.ndarray | None, weights: UserItems | None, seen: UserItems, users: np.ndarray, recommended: np.ndarray
) -> np.ndarray:
    """For each recommended movie, the movie the user rated ``LIKED`` or more that is most like it; -1 when none
    is (no liked movie, or none with a positive item-item weight or a factor cosine of ``MIN_COSINE``)."""
    users = np.asarray(users, dtype=np.int64)
    recommended = np.asarray(recommended, dtype=np.int64)
    because = np.full(recommended.shape, -1, dtype=np.int64)
    if seen.values is None:
        return because
    keys = weights.keys() if weights is not None else None
    for row, u in enumerate(users.tolist()):
        liked = seen.row(u)[seen.row_values(u) >= LIKED]
        picks = recommended[row]
        valid = picks >= 0
        if not len(liked) or not valid.any():
            continue
        sims, meaningful = similarity(factors, weights, liked, picks[valid], keys)
        best = np.argmax(np.where(meaningful, sims, -np.inf), axis=0)  # a weak likeness names no reason
        because[row, valid] = np.where(meaningful.any(axis=0), liked[best], -1)
    return because
