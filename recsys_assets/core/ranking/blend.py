"""One scorer for every ranking candidate: iALS, item-item, most popular and their blends.

A user's score for a movie is ``w_f z(factors) + w_i z(item-item) + w_p z(log popularity)``: each
part standardized (per user for the two personal parts, over the catalogue for popularity), so one
set of weights means the same on any data set. ``(1, 0, 0)`` is iALS alone, ``(0, 0, 1)`` most
popular, and a negative popularity weight is the popularity penalty of the diversity setting.
Scored in blocks of users like :func:`topn.top_n`, so memory stays at block x movies.
"""

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from recsys_assets.core.ranking.interactions import UserItems
from recsys_assets.core.ranking.itemitem import item_scores
from recsys_assets.core.ranking.topn import TopN
from recsys_assets.core.weights_file import torch_in_use

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Weights:
    """How much each standardized part counts."""

    factors: float = 1.0
    items: float = 0.0
    popularity: float = 0.0

    def describe(self) -> str:
        named = {"iALS": self.factors, "item-item": self.items, "popularity": self.popularity}
        parts = [f"{name} {w:g}" for name, w in named.items() if w]
        if not parts:
            return "nothing (all weights 0)"
        if len(parts) == 1 and self.popularity > 0:
            return "most popular"
        return " + ".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Weights":
        return cls(**{k: float(values[k]) for k in ("factors", "items", "popularity") if k in values})


@dataclass
class Components:
    """The fitted parts a blend draws on (a part that was not fitted is None)."""

    user_factors: np.ndarray | None
    item_factors: np.ndarray | None
    item_item: UserItems | None
    movie_counts: np.ndarray  # ratings per movie: the popularity part
    item_exponent: float = 0.0  # how the item-item part reads a rated movie (itemitem.input_values; 0: as 1)

    @property
    def n_movies(self) -> int:
        return len(self.movie_counts)

    def popularity(self) -> np.ndarray:
        """``log(1 + ratings)`` standardized over the catalogue."""
        log = np.log1p(np.asarray(self.movie_counts, dtype=np.float64))
        return ((log - log.mean()) / max(float(log.std()), 1e-12)).astype(np.float32)


def _standardize(scores: "torch.Tensor") -> "torch.Tensor":
    mean = scores.mean(dim=1, keepdim=True)
    std = scores.std(dim=1, keepdim=True).clamp_min(1e-12)
    return (scores - mean) / std


def _raw_parts(parts: Components, seen: UserItems, users: np.ndarray, weights: Sequence[Weights]):
    """The raw factor and item-item scores the ``weights`` use, for one block of users (B x movies, or None)."""
    factors = items = None
    if any(w.factors for w in weights):
        if parts.user_factors is None or parts.item_factors is None:
            raise ValueError("a blend with an iALS weight needs factors")
        P = np.ascontiguousarray(parts.user_factors[users], dtype=np.float32)
        Q = np.ascontiguousarray(parts.item_factors, dtype=np.float32)
        factors = _product(P, Q)
    if any(w.items for w in weights):
        if parts.item_item is None:
            raise ValueError("a blend with an item-item weight needs the item-item model")
        items = item_scores(parts.item_item, seen, users, parts.item_exponent)
    return factors, items


def _product(P: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """``P @ Q.T`` in float32: PyTorch's product where it is loaded (training), numpy's on the read path."""
    if not torch_in_use():
        return P @ Q.T
    import torch

    return (torch.from_numpy(P) @ torch.from_numpy(Q).T).numpy()


def _combine(factors: "torch.Tensor", items: "torch.Tensor", popularity: "torch.Tensor", w: Weights, rows: int):
    scores = popularity.expand(rows, -1) * w.popularity
    if w.factors:
        scores = scores + w.factors * factors
    if w.items:
        scores = scores + w.items * items
    return scores


def _block_top_k(
    factors, items, popularity: np.ndarray, weights: Sequence[Weights], seen, chunk, *, k: int, mask: bool
):
    """:func:`kernels.blend_top_k` in PyTorch: the standardized parts, then one masked top-k per weight."""
    import torch

    f = _standardize(torch.from_numpy(factors)) if factors is not None else torch.zeros(0)
    i = _standardize(torch.from_numpy(items)) if items is not None else torch.zeros(0)
    rows, cols = (torch.from_numpy(a) for a in seen.pairs(chunk))
    out_m = np.empty((len(weights), len(chunk), k), dtype=np.int64)
    out_s = np.empty((len(weights), len(chunk), k), dtype=np.float32)
    for n, w in enumerate(weights):
        total = _combine(f, i, torch.from_numpy(popularity), w, len(chunk)).clone()
        if mask:
            total[rows, cols] = -torch.inf
        top = torch.topk(total, k, dim=1)
        out_m[n], out_s[n] = top.indices.numpy(), top.values.numpy()
    return out_m, out_s


def _block_top_k_numpy(factors, items, popularity: np.ndarray, weights: Sequence[Weights], seen, chunk, *, k, mask):
    """:func:`_block_top_k` in numpy (the read path, where neither PyTorch nor Numba is loaded): the same
    standardized parts (sample standard deviation, at least 1e-12), masked, the best ``k`` (ties: lower index)."""

    def z(scores):
        scores = np.asarray(scores, dtype=np.float64)
        centred = scores - scores.mean(axis=1, keepdims=True)
        std = np.sqrt((centred**2).sum(axis=1, keepdims=True) / max(scores.shape[1] - 1, 1))
        return centred / np.maximum(std, 1e-12)

    f = z(factors) if factors is not None else 0.0
    i = z(items) if items is not None else 0.0
    rows, cols = seen.pairs(chunk)
    out_m = np.empty((len(weights), len(chunk), k), dtype=np.int64)
    out_s = np.empty((len(weights), len(chunk), k), dtype=np.float32)
    for n, w in enumerate(weights):
        total = np.broadcast_to(np.asarray(popularity, np.float64) * w.popularity, (len(chunk), len(popularity)))
        total = (total + w.factors * f + w.items * i).astype(np.float32)
        if mask:
            total[rows, cols] = -np.inf
        order = np.argsort(-total, axis=1, kind="stable")[:, :k]
        out_m[n], out_s[n] = order, np.take_along_axis(total, order, axis=1)
    return out_m, out_s


def _block_ranker(compiled: bool | None, coef: np.ndarray) -> Callable:
    """The block top-k to run: numpy on the read path (PyTorch not loaded, ``compiled`` not given), else the
    Numba kernel when installed and not refused, else PyTorch."""
    if compiled is None and not torch_in_use():
        return _block_top_k_numpy
    from recsys_assets.core.ranking import kernels

    if compiled is False or kernels.numba is None:
        return _block_top_k

    def compiled_top_k(factors, items, popularity, _weights, seen, chunk, *, k: int, mask: bool):
        return kernels.blend_top_k(factors, items, popularity, coef, seen, chunk, k=k, mask=mask)

    return compiled_top_k


def blend_top_n_many(
    parts: Components,
    weights: Sequence[Weights],
    seen: UserItems,
    users: np.ndarray,
    k: int,
    *,
    mask: bool = True,
    block: int = 1024,
    compiled: bool | None = None,
) -> list[TopN]:
    """Top-``k`` movies of ``users`` under each of ``weights`` (the parts are computed once per block).

    ``seen`` holds what each user rated: the item-item part scores from it, and with ``mask`` those
    movies are never returned. ``compiled``: False runs the PyTorch path instead of the Numba kernel
    (:func:`kernels.blend_top_k`, the default when Numba is installed). Where PyTorch is not loaded (the read
    path) and ``compiled`` is not given, the numpy form runs: it imports neither PyTorch nor Numba."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    users = np.asarray(users, dtype=np.int64)
    k = min(k, parts.n_movies)
    popularity = parts.popularity()
    movies = np.empty((len(weights), len(users), k), dtype=np.int64)
    scores = np.empty((len(weights), len(users), k), dtype=np.float32)
    coef = np.array([[w.factors, w.items, w.popularity] for w in weights], dtype=np.float64).reshape(-1, 3)
    ranker = _block_ranker(compiled, coef)
    for start in range(0, len(users), block):
        chunk = users[start : start + block]
        factors, items = _raw_parts(parts, seen, chunk, weights)
        block_m, block_s = ranker(factors, items, popularity, weights, seen, chunk, k=k, mask=mask)
        movies[:, start : start + len(chunk)], scores[:, start : start + len(chunk)] = block_m, block_s
    return [TopN(users, movies[i], scores[i]) for i in range(len(weights))]


def blend_top_n(
    parts: Components, weights: Weights, seen: UserItems, users, k: int, *, mask: bool = True, block: int = 1024
) -> TopN:
    """Top-``k`` movies of ``users`` under ``weights`` (see :func:`blend_top_n_many`)."""
    return blend_top_n_many(parts, [weights], seen, users, k, mask=mask, block=block)[0]


def blend_ranker(parts: Components, weights: Weights, seen: UserItems) -> Callable[[np.ndarray, int], np.ndarray]:
    """A ranker ``(users, k) -> movie indices`` for :func:`evaluate.evaluate_rankers`."""
    return lambda users, k: blend_top_n(parts, weights, seen, users, k).movies
