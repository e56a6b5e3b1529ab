"""``RankingModel``: the published ranking model and its file, ``ranking_model.pth``.

Like ``recommendation_model.pth`` it is a ``torch.save`` dictionary of tensors,
numbers, strings and dicts only, read with ``torch.load(..., weights_only=True)``
(no pickle of arbitrary objects), and checked on load: shapes, id order, index
ranges and finite factors, with one clear error naming what is wrong. Keys:

``format_version``, ``architecture`` (``"ials"``), ``user_factors``,
``item_factors``, ``user_ids``/``movie_ids`` (sorted raw ids; position = index),
``seen_indptr``/``seen_indices``/``seen_ratings`` (what each user rated: the
movies never recommended back, and the input of fold-in and explanations),
``params``, ``metrics``, ``trained_on`` and ``info``; and ``eval_user_factors``/
``eval_item_factors``, the held-out fit (training split only) that the reported
metrics come from, so the evaluation asset scores exactly what the check saw;
``heldback_*``, the held-back evaluation set no published fit trained on (``core/heldback.py``).

Format 2 (architecture ``"blend"``) adds the candidate chosen on the inner split: ``blend`` (the
weights of iALS, item-item and popularity, :mod:`blend`), and the item-item model as a sparse movie x
movie matrix ``item_indptr``/``item_indices``/``item_weights`` (and ``eval_item_*``, its held-out
fit), and ``item_exponent``, how the item-item part reads a user's ratings (``itemitem.input_values``;
absent in older files, which read every rated movie as 1), ``min_ratings`` (the evidence a listed movie
needs) and ``max_exposure`` with ``exposure_movies``/``exposure_limits``, the exposure limit of the lists
(:mod:`exposure`; absent in older files: no limit). Most popular is a blend too (popularity
weight only), so every candidate is this one file, still tensors and plain values only. Format 1 files
(iALS alone) still load.
"""

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from recsys_assets.core.atomic import atomic_torch_save
from recsys_assets.core.heldback import HeldBack
from recsys_assets.core.ids import IdMapping
from recsys_assets.core.model_errors import ModelFileError
from recsys_assets.core.ranking.blend import Components, Weights, blend_top_n
from recsys_assets.core.ranking.choose import well_rated
from recsys_assets.core.ranking.exposure import exposure_limits, ordered, pool
from recsys_assets.core.ranking.ials import gram_of, solve_users
from recsys_assets.core.ranking.interactions import UserItems
from recsys_assets.core.ranking.params import IALSParams
from recsys_assets.core.ranking.similarity import neighbours, reasons
from recsys_assets.core.weights_file import as_array, read_weights

FORMAT_VERSION = 2
READS = (1, 2)
ARCHITECTURE = "ials"  # format 1: iALS alone
BLEND = "blend"  # format 2: any candidate
_REQUIRED = (
    "user_factors",
    "item_factors",
    "user_ids",
    "movie_ids",
    "seen_indptr",
    "seen_indices",
    "seen_ratings",
    "params",
)


@dataclass
class RankingModel:
    """iALS factors addressed by raw ids, with what every user rated."""

    user_factors: np.ndarray  # (users, k) float32
    item_factors: np.ndarray  # (movies, k) float32
    users: IdMapping
    movies: IdMapping
    seen: UserItems  # ratings the factors were fitted on
    params: IALSParams
    metrics: dict = field(default_factory=dict)
    trained_on: str = "train+val"
    info: dict = field(default_factory=dict)
    evaluation: tuple[np.ndarray, np.ndarray] | None = None  # (user, item) factors of the held-out fit
    weights: Weights = field(default_factory=Weights)  # the blend chosen on the inner split
    item_item: UserItems | None = None  # movie x movie weights (EASE or RP3beta), fit on everything
    evaluation_item_item: UserItems | None = None  # the same, fit on the training split only
    heldback: HeldBack | None = None  # ratings no published fit trained on (promotion evidence)
    item_exponent: float = 0.0  # how the item-item part reads a rated movie (itemitem.input_values; 0: as 1)
    min_ratings: int = 1  # the fewest ratings a listed movie needs (chosen on the inner splits; choose_support)
    max_exposure: float = 1.0  # the largest share of the users a movie is listed for (exposure.py; 1: no limit)
    exposure: np.ndarray | None = None  # per movie, the weakest claim that keeps it in a list (-inf: no limit)
    _counts: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)
    _gram: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def movie_counts(self) -> np.ndarray:
        """Ratings per movie of what the model was fitted on (counted once)."""
        if self._counts is None:
            self._counts = self.seen.movie_counts()
        return self._counts

    def components(self, seen: UserItems | None = None) -> Components:
        """The published parts; popularity counts from ``seen`` (default: what the model was fitted on)."""
        counts = self.movie_counts() if seen is None else seen.movie_counts()
        return Components(self.user_factors, self.item_factors, self.item_item, counts, self.item_exponent)

    def evaluation_components(self, seen: UserItems, users: IdMapping, movies: IdMapping) -> Components | None:
        """The held-out fit's parts (training split only) re-indexed to the mappings ``users``/``movies`` (ids the
        model lacks get zero factors and no weights), popularity from ``seen``; None without them."""
        if self.evaluation is None or (self.weights.items and self.evaluation_item_item is None):
            return None
        items = self.evaluation_item_item
        if items is not None:  # movie x movie weights, re-indexed like the factors
            rows = np.repeat(np.arange(items.n_users), items.counts())
            src, dst = self.movies.ids[rows], self.movies.ids[items.indices]
            keep = movies.known(src) & movies.known(dst)
            values = np.ones(items.nnz, np.float32) if items.values is None else items.values
            items = UserItems.from_pairs(
                movies.encode(src[keep]), movies.encode(dst[keep]), len(movies), len(movies), values[keep]
            )
        user_factors, item_factors = self.evaluation
        P, Q = aligned(user_factors, self.users, users), aligned(item_factors, self.movies, movies)
        return Components(P, Q, items, seen.movie_counts(), self.item_exponent)

    def top_n(self, users: np.ndarray, k: int, *, seen: UserItems | None = None, mask: bool = True):
        """Top-``k`` movies of ``users`` under the chosen blend: rows of the model's own ``seen``, or of
        another ``seen`` (users the model never saw, folded in against the fixed movie factors)."""
        if seen is None:
            return blend_top_n(self.components(), self.weights, self.seen, users, k, mask=mask)
        factors = self.fold_in_factors(seen) if self.weights.factors else None
        parts = Components(factors, self.item_factors, self.item_item, self.movie_counts(), self.item_exponent)
        return blend_top_n(parts, self.weights, seen, users, k, mask=mask)

    def ranked_pool(self, users: np.ndarray, k: int, *, seen: UserItems | None = None, mask: bool = True):
        """The ranked movies a list of ``k`` is chosen from (:func:`exposure.pool`), by score, ties by more
        ratings first; ``seen`` as in :meth:`top_n`."""
        result = self.top_n(users, pool(k), seen=seen, mask=mask)
        order = ordered(result.movies, result.scores, self.movie_counts())
        rows = np.arange(len(order))[:, None]
        result.movies, result.scores = result.movies[rows, order], result.scores[rows, order]
        return result

    def supported(self, movies: np.ndarray) -> np.ndarray:
        """Whether each of ``movies`` (indices, -1 for none) has the ratings a listed movie needs."""
        return well_rated(movies, self.movie_counts(), self.min_ratings)

    def with_exposure_limit(self, share: float, k: int = 10, *, max_users: int = 20_000, seed: int = 0):
        """This model with the exposure limits that keep every movie in at most ``share`` of its users' top-``k``
        lists (computed on a sample of at most ``max_users`` users; ``share`` 1: no limit)."""
        if share >= 1:
            return replace(self, max_exposure=1.0, exposure=None)
        users = np.arange(len(self.users))
        if len(users) > max_users:
            users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
        result = self.ranked_pool(users, k)
        limits = exposure_limits(
            result.movies, result.scores, self.supported(result.movies), len(self.movies), share, k
        )
        return replace(self, max_exposure=float(share), exposure=limits)

    def fold_in_factors(self, seen: UserItems) -> np.ndarray:
        """Factors of the users in ``seen`` (rows) solved against the fixed movie factors (their ``Y^T Y`` kept)."""
        if self._gram is None:
            self._gram = gram_of(self.item_factors)
        return solve_users(self.item_factors, seen, self.params, gram=self._gram)

    def because(self, users: np.ndarray, recommended: np.ndarray, seen: UserItems | None = None) -> np.ndarray:
        """The movie each user rated 4 or more that is most like each recommendation (-1: none)."""
        return reasons(self.item_factors, self.item_item, self.seen if seen is None else seen, users, recommended)

    def similar(self, movie: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Movie indices most like ``movie`` (item-item weights first, factor cosine after) and their similarity."""
        return neighbours(self.item_factors, self.item_item, movie, k)

    def fold_in(self, movie_indices: np.ndarray, ratings: np.ndarray) -> tuple[np.ndarray, UserItems]:
        """The factors of a user the model never saw, from their ratings (one least-squares solve)."""
        one = UserItems.from_pairs(
            np.zeros(len(movie_indices), dtype=np.int64), movie_indices, 1, len(self.movies), ratings
        )
        return self.fold_in_factors(one)[0], one

    def held_out(self) -> "RankingModel":
        """This model with the held-out fit (training split only) in place of the published one, or itself
        when the file has none."""
        if self.evaluation is None or (self.weights.items and self.evaluation_item_item is None):
            return self
        user_factors, item_factors = self.evaluation
        return replace(self, user_factors=user_factors, item_factors=item_factors, item_item=self.evaluation_item_item)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the file atomically (temp file, then rename)."""
        import torch

        def tensor(array, dtype):  # a copy: ids may be read-only views
            return torch.from_numpy(np.array(array, dtype=dtype, copy=True))

        payload = {
            "format_version": FORMAT_VERSION,
            "architecture": BLEND,
            "user_factors": tensor(self.user_factors, np.float32),
            "item_factors": tensor(self.item_factors, np.float32),
            "user_ids": tensor(self.users.ids, np.int64),
            "movie_ids": tensor(self.movies.ids, np.int64),
            "seen_indptr": tensor(self.seen.indptr, np.int64),
            "seen_indices": tensor(self.seen.indices, np.int32),
            "seen_ratings": tensor(self.seen.values, np.float32),
            "params": self.params.to_dict(),
            "metrics": {k: float(v) for k, v in self.metrics.items()},
            "trained_on": self.trained_on,
            "info": dict(self.info),
        }
        if self.evaluation is not None:
            payload["eval_user_factors"] = tensor(self.evaluation[0], np.float32)
            payload["eval_item_factors"] = tensor(self.evaluation[1], np.float32)
        payload["blend"] = self.weights.to_dict()
        payload["item_exponent"] = float(self.item_exponent)
        payload["min_ratings"] = int(self.min_ratings)
        payload["max_exposure"] = float(self.max_exposure)
        if self.exposure is not None:
            limited = np.flatnonzero(np.isfinite(self.exposure))
            payload["exposure_movies"] = tensor(limited, np.int64)
            payload["exposure_limits"] = tensor(self.exposure[limited], np.float64)
        for prefix, matrix in (("item", self.item_item), ("eval_item", self.evaluation_item_item)):
            if matrix is not None:
                payload[f"{prefix}_indptr"] = tensor(matrix.indptr, np.int64)
                payload[f"{prefix}_indices"] = tensor(matrix.indices, np.int32)
                payload[f"{prefix}_weights"] = tensor(matrix.values, np.float32)
        if self.heldback is not None:
            payload.update({k: tensor(v, v.dtype) for k, v in self.heldback.arrays().items()})
        return atomic_torch_save(payload, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RankingModel":
        """Read (``torch.load(weights_only=True)``) and validate a ranking model file; any defect raises
        :class:`ModelFileError`."""

        def torch_load(p: Path):
            import torch

            return torch.load(p, map_location="cpu", weights_only=True)

        return cls._validated(Path(path), torch_load)

    @classmethod
    def read(cls, path: str | os.PathLike) -> "RankingModel":
        """:meth:`load` without PyTorch (``core/weights_file.py``'s restricted reader): the read path's loader,
        the same checks and the same model."""
        return cls._validated(Path(path), read_weights)

    @classmethod
    def _validated(cls, path: Path, reader) -> "RankingModel":
        if not path.exists():
            raise ModelFileError(f"ranking model file not found: {path}; materialize ranking_model first")
        try:
            payload = reader(path)
        except Exception as exc:
            raise ModelFileError(f"{path} is not a readable model file: {exc}") from exc
        if (
            not isinstance(payload, dict)
            or payload.get("architecture") not in (ARCHITECTURE, BLEND)
            or any(k not in payload for k in _REQUIRED)
        ):
            raise ModelFileError(
                f"{path} is not a recsys_assets ranking model file (expected keys {', '.join(_REQUIRED)})"
            )
        if payload.get("format_version") not in READS:
            raise ModelFileError(
                f"{path} has ranking file format {payload.get('format_version')!r}; this version reads "
                f"{', '.join(map(str, READS))}"
            )
        try:
            return cls._from_payload(payload)
        except (ValueError, TypeError, KeyError) as exc:
            raise ModelFileError(f"{path} is damaged: {exc}") from exc

    @classmethod
    def _from_payload(cls, payload: dict) -> "RankingModel":
        arrays = {k: _array(payload[k], k) for k in _REQUIRED if k != "params"}
        P, Q = arrays["user_factors"], arrays["item_factors"]
        user_ids, movie_ids = arrays["user_ids"], arrays["movie_ids"]
        if P.ndim != 2 or Q.ndim != 2 or P.shape[1] != Q.shape[1]:
            raise ValueError(f"factor shapes {P.shape} and {Q.shape} do not match")
        if len(user_ids) != len(P) or len(movie_ids) != len(Q):
            raise ValueError(
                f"{len(user_ids)} user ids for {len(P)} user rows, {len(movie_ids)} movie ids for {len(Q)} movie rows"
            )
        for name, ids in (("user", user_ids), ("movie", movie_ids)):
            if len(ids) > 1 and not (np.diff(ids) > 0).all():
                raise ValueError(f"{name} ids are not sorted and unique")
        if not (np.isfinite(P).all() and np.isfinite(Q).all()):
            raise ValueError("factors hold NaN or infinite values")
        indptr, indices, ratings = arrays["seen_indptr"], arrays["seen_indices"], arrays["seen_ratings"]
        _check_seen(indptr, indices, ratings, n_users=len(P), n_movies=len(Q))
        params = IALSParams(
            **{k: payload["params"][k] for k in IALSParams.__dataclass_fields__ if k in payload["params"]}
        )
        if params.factors != P.shape[1]:
            raise ValueError(f"params say {params.factors} factors, the arrays hold {P.shape[1]}")
        evaluation = None
        if "eval_user_factors" in payload:
            eP, eQ = _array(payload["eval_user_factors"], "eval"), _array(payload["eval_item_factors"], "eval")
            if eP.shape != P.shape or eQ.shape != Q.shape or not (np.isfinite(eP).all() and np.isfinite(eQ).all()):
                raise ValueError("the held-out fit's factors do not match the model or are not finite")
            evaluation = (eP, eQ)
        return cls(
            P,
            Q,
            IdMapping(user_ids),
            IdMapping(movie_ids),
            UserItems(indptr, indices, ratings, len(Q)),
            params,
            dict(payload.get("metrics", {})),
            str(payload.get("trained_on", "")),
            dict(payload.get("info", {})),
            evaluation,
            Weights.from_dict(payload.get("blend", {})),
            _item_item(payload, "item", len(Q)),
            _item_item(payload, "eval_item", len(Q)),
            HeldBack.from_payload(payload),
            float(payload.get("item_exponent", 0.0)),
            int(payload.get("min_ratings", 1)),
            float(payload.get("max_exposure", 1.0)),
            _exposure(payload, len(Q)),
        )._checked()

    def _checked(self) -> "RankingModel":
        w = self.weights
        if not all(np.isfinite([w.factors, w.items, w.popularity])):
            raise ValueError("the blend weights are not finite")
        if not (np.isfinite(self.item_exponent) and 0 <= self.item_exponent <= 10):
            raise ValueError(f"item_exponent must be between 0 and 10, got {self.item_exponent}")
        if not 1 <= self.min_ratings <= 1_000_000:
            raise ValueError(f"min_ratings must be between 1 and 1,000,000, got {self.min_ratings}")
        if not 0 < self.max_exposure <= 1:
            raise ValueError(f"max_exposure must be in (0, 1], got {self.max_exposure}")
        if w.items and self.item_item is None:
            raise ValueError("the blend uses item-item weights that the file does not hold")
        return self


def _array(value, name: str) -> np.ndarray:
    """A stored tensor as a numpy array (either reader's), or a ValueError naming the key."""
    array = as_array(value)
    if array is None:
        raise ValueError(f"{name} is not a tensor")
    return array


def aligned(factors: np.ndarray, model_ids: IdMapping, target: IdMapping) -> np.ndarray:
    """Rows of ``factors`` (indexed by ``model_ids``) re-indexed to ``target``; ids the model lacks get zeros."""
    out = np.zeros((len(target), factors.shape[1]), dtype=np.float32)
    known = model_ids.known(target.ids)
    out[known] = factors[model_ids.encode(target.ids[known])]
    return out


def _check_seen(indptr: np.ndarray, indices: np.ndarray, ratings: np.ndarray, *, n_users: int, n_movies: int) -> None:
    """The stored seen-movie index (CSR rows of users) fits the factors, or a ValueError."""
    if len(indptr) != n_users + 1 or indptr[0] != 0 or (np.diff(indptr) < 0).any() or indptr[-1] != len(indices):
        raise ValueError("the seen-movie index does not fit the users")
    if len(ratings) != len(indices) or not np.isfinite(ratings).all():
        raise ValueError("the seen ratings do not fit the seen-movie index")
    if len(indices) and (indices.min() < 0 or indices.max() >= n_movies):
        raise ValueError("the seen-movie index names movies the model does not have")


def _exposure(payload: dict, n_movies: int) -> np.ndarray | None:
    """The per-movie exposure limits (-inf where none), or None when the file has none."""
    if "exposure_movies" not in payload:
        return None
    movies, limits = _array(payload["exposure_movies"], "exposure"), _array(payload["exposure_limits"], "exposure")
    if movies.shape != limits.shape or (len(movies) and (movies.min() < 0 or movies.max() >= n_movies)):
        raise ValueError("the exposure limits do not match the movies")
    if not np.isfinite(limits).all():
        raise ValueError("the exposure limits are not finite")
    out = np.full(n_movies, -np.inf)
    out[movies.astype(np.int64)] = limits.astype(np.float64)
    return out


def _item_item(payload: dict, prefix: str, n_movies: int) -> UserItems | None:
    """The stored movie x movie weights, checked like the seen-movie index; None when absent."""
    if f"{prefix}_indptr" not in payload:
        return None
    indptr, indices, weights = (_array(payload[f"{prefix}_{k}"], prefix) for k in ("indptr", "indices", "weights"))
    if len(indptr) != n_movies + 1 or indptr[0] != 0 or (np.diff(indptr) < 0).any() or indptr[-1] != len(indices):
        raise ValueError(f"the {prefix.replace('_', ' ')} weights do not fit the movies")
    if len(weights) != len(indices) or not np.isfinite(weights).all():
        raise ValueError(f"the {prefix.replace('_', ' ')} weights are not finite or do not fit their index")
    if len(indices) and (indices.min() < 0 or indices.max() >= n_movies):
        raise ValueError(f"the {prefix.replace('_', ' ')} weights name movies the model does not have")
    return UserItems(indptr, indices, weights, n_movies)
