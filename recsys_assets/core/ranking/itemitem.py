"""Item-item models: a movie's score for a user is the sum of its weights from the movies the user rated.

* **EASE** (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", 2019): the weights ``B``
  minimize ``|X - X B|^2 + |Lambda^1/2 B|^2`` with a zero diagonal, in closed form
  ``B = I - P diag(1 / diag(P))``, ``P = (X'X + Lambda)^-1``. ``Lambda = lambda I + p / (1 - p) diag(X'X)``:
  lambda alone is EASE; the second term (Steck's EDLAE, 2020: EASE trained with its inputs dropped at rate
  ``p``) shrinks a much-rated movie's weights more. It needs an n x n matrix, so it is
  used up to a memory cap on the catalogue (``ItemItemParams.max_ease_items``).
* **RP3beta** (Paudel et al., 2017): a two-step random walk movie -> user -> movie, each step's
  probabilities raised to ``alpha``, divided by the target's popularity to the power ``beta``. It is
  sparse and is computed in blocks of movies, so it scales past the EASE cap.

EASE reads each rated movie as ``(rating / top) ** rating_exponent`` rather than 1 (fit and scores alike:
:func:`input_values`), which lets a user's 5-star movies speak louder than their 2-star ones; RP3beta's
random walk reads who rated what (binary). Either way only the ``neighbours`` strongest weights (by size,
so EASE's negative weights, which push a movie down, are kept too) of each movie are kept: the result is a sparse
movie x movie matrix (:class:`UserItems` with movies as rows) that the ranking file stores and that
``similar_movies`` and the "because you rated" reasons read.
"""

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from recsys_assets.core import rating_scale
from recsys_assets.core.ranking.interactions import UserItems
from recsys_assets.core.ranking.params import ItemItemParams
from recsys_assets.core.weights_file import torch_in_use

if TYPE_CHECKING:
    import torch


@dataclass
class ItemItemModel:
    """The sparse weights (row = the rated movie, column = the scored movie) and how they were made."""

    weights: UserItems
    method: str
    fit_seconds: float
    rating_exponent: float = 0.0  # how a user's rated movies are read when scoring (:func:`input_values`)


def input_values(ratings: np.ndarray | None, exponent: float, n: int | None = None) -> np.ndarray:
    """What each rated movie counts for in the item-item model: ``(rating / top) ** exponent``, ``top`` the top
    of the rating scale; 1 for every rated movie at exponent 0 or without ratings (then ``n`` of them)."""
    if ratings is None or exponent == 0:
        return np.ones(len(ratings) if ratings is not None else int(n or 0), dtype=np.float32)
    scaled = np.clip(np.asarray(ratings, dtype=np.float64), 0.0, None) / rating_scale.current().high
    return (scaled**exponent).astype(np.float32)


def _binary(matrix: UserItems):
    return matrix.to_scipy(np.ones(matrix.nnz, dtype=np.float32))


def _keep_strongest(rows: "torch.Tensor", first_row: int, neighbours: int) -> tuple[np.ndarray, ...]:
    """(row, column, value) of the ``neighbours`` largest entries by size (non-zero) of each row of a dense block."""
    import torch

    k = min(neighbours, rows.shape[1])
    cols = torch.topk(rows.abs(), k, dim=1).indices
    values = rows.gather(1, cols).numpy().ravel()
    cols = cols.numpy().ravel()
    row_ids = np.repeat(np.arange(first_row, first_row + rows.shape[0]), k)
    keep = values != 0
    return row_ids[keep], cols[keep], values[keep]


def _sparse(parts: list[tuple[np.ndarray, ...]], n_movies: int) -> UserItems:
    rows = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.int64)
    cols = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, np.int64)
    vals = np.concatenate([p[2] for p in parts]) if parts else np.empty(0, np.float32)
    return UserItems.from_pairs(rows, cols, n_movies, n_movies, vals.astype(np.float32))


def fit_ease(matrix: UserItems, params: ItemItemParams, block: int = 2048) -> UserItems:
    """EASE's weights, the strongest ``params.neighbours`` per movie (float32; n^2 memory in the rated movies),
    learnt from :func:`input_values`; ``ease_lambda`` is scaled by their mean square (so it means the same at
    any exponent), plus ``ease_dropout``'s term on each movie (``Lambda`` in the module docstring).

    Only the movies rated in ``matrix`` enter the solve: an unrated movie's row and column of the gram
    are zero but for lambda on the diagonal, so its weights are zero and the others' are the same
    without it (a catalogue where a quarter of the movies have no rating in an inner split solves a
    system 0.4x the size)."""
    import torch

    n = matrix.n_movies
    active = np.flatnonzero(matrix.movie_counts())
    inputs = input_values(matrix.values, params.rating_exponent, matrix.nnz)
    X = matrix.to_scipy(inputs)[:, active]
    gram = torch.from_numpy((X.T @ X).toarray().astype(np.float32))
    mean_square = float(np.mean(inputs.astype(np.float64) ** 2)) if len(inputs) else 1.0
    emphasis = params.ease_dropout / (1.0 - params.ease_dropout)  # EDLAE: the penalty grows with a movie's inputs
    gram.diagonal().mul_(1.0 + emphasis).add_(params.ease_lambda * max(mean_square, 1e-6))
    # the inverse from the Cholesky factor (LAPACK potri): on 2 quiet cores 2x faster than cholesky_solve
    # against the identity (5,000 movies: 0.8 s against 1.6 s); as fast as it with a core busy elsewhere
    P = torch.cholesky_inverse(torch.linalg.cholesky(gram))
    del gram
    B = P / (-P.diagonal()).unsqueeze(0)  # column j divided by -P_jj
    del P
    B.fill_diagonal_(0.0)
    parts = [_keep_strongest(B[s : s + block], s, params.neighbours) for s in range(0, len(active), block)]
    return _sparse([(active[rows], active[cols], values) for rows, cols, values in parts], n)


def fit_rp3beta(
    matrix: UserItems, params: ItemItemParams, *, seed: int = 0, block: int = 1024, compiled: bool | None = None
) -> UserItems:
    """RP3beta's weights, the strongest ``params.neighbours`` per movie: with Numba one movie at a time
    (:func:`kernels.strongest_products`), else (or ``compiled=False``) in dense blocks of movies."""
    n = matrix.n_movies
    X = _binary(matrix)
    active = np.flatnonzero(matrix.counts())
    if len(active) > params.max_users:  # co-occurrences from a random sample of users bound the cost
        X = X[np.sort(np.random.default_rng(seed).choice(active, params.max_users, replace=False))]
    user_deg = np.asarray(X.sum(axis=1)).ravel()
    movie_deg = np.asarray(X.sum(axis=0)).ravel()
    import scipy.sparse

    to_movie = scipy.sparse.diags(1.0 / np.maximum(user_deg, 1)) @ X  # P(user -> movie)
    to_user = (X @ scipy.sparse.diags(1.0 / np.maximum(movie_deg, 1))).T.tocsr()  # P(movie -> user)
    to_movie = to_movie.power(params.rp3_alpha).astype(np.float32).tocsr()
    to_user = to_user.power(params.rp3_alpha).astype(np.float32).tocsr()
    penalty = (1.0 / np.maximum(movie_deg, 1) ** params.rp3_beta).astype(np.float32)
    from recsys_assets.core.ranking import kernels

    if (
        kernels.numba is not None and compiled is not False
    ):  # straight to each movie's strongest weights, no dense block
        rows, cols, vals = kernels.strongest_products(to_user, to_movie, penalty, params.neighbours)
        return UserItems.from_pairs(rows, cols, n, n, vals)
    import torch

    parts = []
    for s in range(0, n, block):
        W = torch.from_numpy(kernels.rows_times(to_user, np.arange(s, min(s + block, n)), to_movie, compiled=compiled))
        W.mul_(torch.from_numpy(penalty))
        W[torch.arange(W.shape[0]), torch.arange(s, s + W.shape[0])] = 0.0
        parts.append(_keep_strongest(W, s, params.neighbours))
    return _sparse(parts, n)


def fit_item_item(matrix: UserItems, params: ItemItemParams | None = None) -> ItemItemModel | None:
    """The item-item model ``params`` name for this catalogue (None when the method is ``none``)."""
    params = params or ItemItemParams()
    method = params.resolved(matrix.n_movies)
    if method == "none" or matrix.nnz == 0:
        return None
    started = time.perf_counter()
    if method == "ease":
        # a matrix without ratings is fitted binary, and recorded so: its scores must read it the same way
        exponent = params.rating_exponent if matrix.values is not None else 0.0
        return ItemItemModel(fit_ease(matrix, params), method, time.perf_counter() - started, exponent)
    return ItemItemModel(fit_rp3beta(matrix, params), method, time.perf_counter() - started)


def item_scores(weights: UserItems, seen: UserItems, users: np.ndarray, exponent: float = 0.0) -> np.ndarray:
    """Dense (len(users), movies) scores: the sum of the weights from each user's rated movies, each
    counted as :func:`input_values` of its rating at ``exponent`` (0: as 1)."""
    users = np.asarray(users, dtype=np.int64)
    if exponent == 0:
        read, rows, binary = seen, users, True
    elif seen.values is None:
        raise ValueError(f"the item-item part reads ratings (exponent {exponent:g}): the rated movies need ratings")
    else:
        taken = seen.take(users)  # only these users' ratings are read, not the whole matrix's
        read = UserItems(taken.indptr, taken.indices, input_values(taken.values, exponent), taken.n_movies)
        rows, binary = np.arange(len(users)), False
    if not torch_in_use():  # the read path: numpy, no Numba
        return _rows_times_numpy(read, rows, weights, binary)
    from recsys_assets.core.ranking import kernels

    return kernels.rows_times(read, rows, weights, binary=binary)


def _rows_times_numpy(a: UserItems, rows: np.ndarray, b: UserItems, binary: bool) -> np.ndarray:
    """``kernels.rows_times`` in numpy for the few rows of a request: each row's weighted sum of rows of ``b``."""
    out = np.zeros((len(rows), b.n_movies), dtype=np.float32)
    b_values = b.values if b.values is not None else np.ones(b.nnz, dtype=np.float32)
    for r, row in enumerate(np.asarray(rows, dtype=np.int64).tolist()):
        movies = a.row(row).astype(np.int64)
        x = np.ones(len(movies), np.float32) if binary or a.values is None else a.row_values(row)
        starts, counts = b.indptr[movies], b.indptr[movies + 1] - b.indptr[movies]
        pos = np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(int(counts.sum()))
        np.add.at(out[r], b.indices[pos], np.repeat(x, counts) * b_values[pos])
    return out


def pair_weights(weights: UserItems, sources, targets, keys: np.ndarray | None = None) -> np.ndarray:
    """``weights[source, target]`` for arrays of movie index pairs (any shape; 0 where not kept).

    ``keys``: ``weights.keys()``, when the caller looks up many times."""
    keys = weights.keys() if keys is None else keys
    sources, targets = np.broadcast_arrays(np.asarray(sources, np.int64), np.asarray(targets, np.int64))
    if not len(keys):
        return np.zeros(sources.shape, dtype=np.float32)
    wanted = sources * weights.n_movies + targets
    pos = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    found = keys[pos] == wanted
    values = weights.values if weights.values is not None else np.ones(len(keys), np.float32)
    return np.where(found, values[pos], 0.0).astype(np.float32)
