"""Implicit-feedback ALS (iALS): the ranking model.

Hu, Koren and Volinsky's model ("Collaborative Filtering for Implicit Feedback
Datasets", 2008): every movie a user rated is a positive with confidence
``c = 1 + alpha * 5 * (rating / 5) ** exponent`` (``1 + alpha * rating`` at exponent 1;
an exponent of 2 trusts a 5-star rating 4x as much as a 2.5), and every other
movie is a negative with confidence 1.
Minimizing ``sum_ui c_ui (p_ui - x_u . y_i)^2 + reg (|x_u|^2 + |y_i|^2)`` by
alternating least squares gives factors whose dot product ranks unseen movies.
Trained to rank rather than to predict stars, it beats a most-popular list by
far where a squared-error rating model does not (README, "Recommendations").

The fit runs in ``implicit`` (Cython conjugate-gradient on the CPU, CUDA on a
GPU). Everything after the fit is here, in batched PyTorch, on any device (``solve_users`` also in numpy,
for the read path, where PyTorch is not loaded):

* :func:`solve_users`: the exact user step against fixed movie factors. It
  re-solves every user once after the fit (so scores, fold-in and explanations
  agree exactly) and folds in a user the model never saw, from a few ratings,
  without retraining.
* :func:`explain`: why a movie was recommended. A user's score for movie ``j``
  is ``y_j . A_u^-1 sum_i c_ui y_i`` with ``A_u = Y'Y + sum_i (c_ui - 1) y_i y_i' + reg I``,
  so it splits exactly into one term per rated movie ``i``:
  ``c_ui y_j' A_u^-1 y_i``. (The reasons the lists show come from :mod:`similarity`: the movie the
  user rated 4 or more that is most like the pick, whatever candidate ranked it.)
"""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from recsys_assets.core import rating_scale
from recsys_assets.core.ranking.interactions import UserItems
from recsys_assets.core.ranking.params import FACTORS, REGULARIZATION, IALSParams  # noqa: F401 - re-exported
from recsys_assets.core.threads import cpu_threads
from recsys_assets.core.weights_file import torch_in_use

if TYPE_CHECKING:
    import torch


def confidence(ratings: np.ndarray, params: "IALSParams") -> np.ndarray:
    """How sure the model is that a rated movie is wanted: ``1 + alpha * top * (rating / top) ** exponent``,
    ``top`` the top of the rating scale (5.0; core/rating_scale.py), which only sets the units of alpha."""
    top = rating_scale.current().high
    scaled = np.clip(np.asarray(ratings, dtype=np.float64), 0.0, None) / top
    return (1.0 + params.alpha * top * scaled**params.confidence_exponent).astype(np.float32)


@dataclass
class IALSModel:
    """Fitted factors (float32 numpy arrays) and how they were made."""

    user_factors: np.ndarray
    item_factors: np.ndarray
    params: IALSParams
    fit_seconds: float
    device: str

    def all_finite(self) -> bool:
        return bool(np.isfinite(self.user_factors).all() and np.isfinite(self.item_factors).all())


def implicit_has_cuda() -> bool:
    """Whether the installed ``implicit`` carries its CUDA kernels and finds a GPU."""
    try:
        import implicit.gpu
    except ImportError:  # pragma: no cover - implicit is a dependency
        return False
    return bool(implicit.gpu.HAS_CUDA)


def ials_device(device: "torch.device", *, explicit: bool) -> "tuple[torch.device, str | None]":
    """The device iALS fits on for the resource's torch device, and a note when it differs.

    CUDA needs ``implicit``'s CUDA kernels: asked for explicitly without them is an
    error; chosen by ``auto``, the fit falls back to the CPU with a note. ``implicit``
    has no Apple-GPU (mps) path, so mps fits on the CPU.
    """
    import torch

    if device.type == "cuda":
        if implicit_has_cuda():
            return device, None
        if explicit:
            raise RuntimeError(
                f"device {device} was asked for, but the installed implicit has no CUDA support "
                "(install an implicit wheel built with CUDA, or set RECSYS_DEVICE=cpu)"
            )
        return torch.device("cpu"), "implicit has no CUDA support here: the ranking model fits on the CPU"
    if device.type == "mps":
        return torch.device("cpu"), "implicit has no mps path: the ranking model fits on the CPU"
    return device, None


def fit_ials(
    matrix: UserItems,
    params: IALSParams | None = None,
    *,
    device: "str | torch.device" = "cpu",
    on_iteration: Callable[[int, float], None] | None = None,
    warm_start: "IALSModel | None" = None,
) -> IALSModel:
    """Fit iALS on ``matrix`` (users x movies with ratings), then re-solve every user exactly.

    ``device`` ``cuda`` runs ``implicit``'s CUDA kernels (its wheels carry them);
    ``on_iteration(i, seconds)`` is called after each of ``params.iterations``. ``warm_start``: a fit of
    the same shape whose factors the sweeps start from (the published refit starts from the held-out
    fit, so it needs fewer sweeps).
    """
    import torch

    params = params or IALSParams()
    if matrix.values is None:
        raise ValueError("iALS needs the ratings (they set the confidences)")
    if matrix.nnz == 0:
        raise ValueError("no ratings to fit")
    device = torch.device(device)
    started = time.perf_counter()
    model = _implicit_model(params, device)
    user_items = matrix.to_scipy(confidence(matrix.values, params))
    callback = (lambda it, seconds, loss: on_iteration(it + 1, seconds)) if on_iteration else None
    if warm_start is not None and device.type != "cuda":
        model.user_factors = np.array(warm_start.user_factors, dtype=np.float32, copy=True)
        model.item_factors = np.array(warm_start.item_factors, dtype=np.float32, copy=True)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):  # implicit runs its own threads; BLAS threads inside them only contend
        model.fit(user_items, show_progress=False, callback=callback)
    if device.type == "cuda":
        model = model.to_cpu()
    items = np.ascontiguousarray(model.item_factors, dtype=np.float32)
    users = solve_users(items, matrix, params, device=device)
    return IALSModel(users, items, params, time.perf_counter() - started, str(device))


def _implicit_model(params: IALSParams, device: "torch.device"):
    from threadpoolctl import threadpool_limits

    if device.type == "cuda":
        if not implicit_has_cuda():
            raise RuntimeError("device cuda was asked for, but the installed implicit has no CUDA support")
        from implicit.gpu.als import AlternatingLeastSquares
    else:
        from implicit.cpu.als import AlternatingLeastSquares
    kwargs = {
        "factors": params.factors,
        "regularization": params.regularization,
        "alpha": 1.0,
        "iterations": params.iterations,
        "random_state": params.seed,
    }
    if device.type != "cuda":
        kwargs["num_threads"] = cpu_threads()
    # imported first, so that the limit reaches every BLAS library implicit loads; it warns at
    # construction when BLAS is multi-threaded
    with threadpool_limits(1, "blas"):
        return AlternatingLeastSquares(**kwargs)


@dataclass
class _Block:
    users: np.ndarray  # (B,) user indices
    movies: "torch.Tensor"  # (B, n) movie indices, padded with 0
    conf: "torch.Tensor"  # (B, n) confidences, 0 on padding
    mask: "torch.Tensor"  # (B, n) True on real entries
    A: "torch.Tensor"  # (B, k, k) the normal-equation matrices
    b: "torch.Tensor"  # (B, k)
    Y: "torch.Tensor"  # (B, n, k) the rated movies' factors


def _blocks(
    Y: "torch.Tensor", matrix: UserItems, params: IALSParams, users: np.ndarray, budget: int = 1 << 18
) -> Iterator[_Block]:
    """Normal equations of ``users``, in blocks of similar rating counts (padded to ``budget`` entries)."""
    import torch

    if matrix.values is None:
        raise ValueError("the confidence of a rated movie needs its rating: build UserItems with ratings")
    values = matrix.values
    counts = matrix.counts()
    order = users[np.argsort(counts[users], kind="stable")]
    k = Y.shape[1]
    gram = Y.T @ Y
    eye = params.regularization * torch.eye(k, dtype=Y.dtype, device=Y.device)
    start = 0
    while start < len(order):
        width = max(int(counts[order[start]]), 1)
        end = start + 1
        while end < len(order) and (end + 1 - start) * max(int(counts[order[end]]), 1) <= budget and end - start < 8192:
            end += 1
        chunk = order[start:end]
        start = end
        n = max(int(counts[chunk].max()), width)
        rows, cols = matrix.pairs(chunk)
        pos = np.arange(len(rows)) - np.repeat(np.cumsum(counts[chunk]) - counts[chunk], counts[chunk])
        movies = np.zeros((len(chunk), n), dtype=np.int64)
        conf = np.zeros((len(chunk), n), dtype=np.float32)
        movies[rows, pos] = cols
        rated = values[np.repeat(matrix.indptr[chunk], counts[chunk]) + pos]
        conf[rows, pos] = confidence(rated, params)
        movies_t = torch.from_numpy(movies).to(Y.device)
        conf_t = torch.from_numpy(conf).to(Y.device)
        mask = conf_t > 0
        Yb = Y[movies_t]
        weighted = Yb * torch.where(mask, conf_t - 1.0, 0.0).unsqueeze(2)
        A = gram + eye + weighted.transpose(1, 2) @ Yb
        b = (Yb * conf_t.unsqueeze(2)).sum(dim=1)
        yield _Block(chunk, movies_t, conf_t, mask, A, b, Yb)


def solve_users(
    item_factors: np.ndarray,
    matrix: UserItems,
    params: IALSParams,
    *,
    device: "str | torch.device" = "cpu",
    gram: np.ndarray | None = None,
) -> np.ndarray:
    """Every user's exact least-squares factors against fixed movie factors, one row per row of
    ``matrix`` (users without ratings: zeros). Without PyTorch loaded (the read path's fold-in) the same
    normal equations are solved in numpy, one user at a time; ``gram``: the movie factors' ``Y^T Y`` in
    float64 (:func:`gram_of`), when the caller keeps it."""
    if not torch_in_use() and str(device) == "cpu":
        return _solve_numpy(item_factors, matrix, params, gram)
    import torch

    Y = torch.from_numpy(np.ascontiguousarray(item_factors, dtype=np.float32)).to(device)
    out = np.zeros((matrix.n_users, Y.shape[1]), dtype=np.float32)
    for block in _blocks(Y, matrix, params, np.flatnonzero(matrix.counts())):
        out[block.users] = torch.linalg.solve(block.A, block.b.unsqueeze(2)).squeeze(2).cpu().numpy()
    return out


def gram_of(item_factors: np.ndarray) -> np.ndarray:
    """``Y^T Y`` of the movie factors in float64: the part of every user's normal equations they share."""
    Y = np.asarray(item_factors, dtype=np.float64)
    return Y.T @ Y


def _solve_numpy(
    item_factors: np.ndarray, matrix: UserItems, params: IALSParams, gram: np.ndarray | None = None
) -> np.ndarray:
    """:func:`solve_users` in numpy (float64, then float32): ``A_u x_u = b_u`` for each user with ratings."""
    if matrix.values is None:
        raise ValueError("the confidence of a rated movie needs its rating: build UserItems with ratings")
    dim = item_factors.shape[1]
    base = (gram_of(item_factors) if gram is None else gram) + params.regularization * np.eye(dim)
    out = np.zeros((matrix.n_users, dim), dtype=np.float32)
    for u in np.flatnonzero(matrix.counts()).tolist():
        conf = confidence(matrix.row_values(u), params).astype(np.float64)
        Yu = np.asarray(item_factors[matrix.row(u)], dtype=np.float64)
        out[u] = np.linalg.solve(base + (Yu * (conf - 1.0)[:, None]).T @ Yu, Yu.T @ conf)
    return out


def explain(
    item_factors: np.ndarray,
    matrix: UserItems,
    params: IALSParams,
    users: np.ndarray,
    recommended: np.ndarray,
    *,
    device: "str | torch.device" = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """For each recommended movie, the rated movie that contributes most to its score.

    ``recommended`` is (len(users), k) movie indices. Returns the contributing
    movie's index (-1 where the user rated nothing) and its share of the score.
    """
    import torch

    users = np.asarray(users, dtype=np.int64)
    recommended = np.asarray(recommended, dtype=np.int64)
    because = np.full(recommended.shape, -1, dtype=np.int64)
    share = np.zeros(recommended.shape, dtype=np.float32)
    if not len(users):
        return because, share
    Y = torch.from_numpy(np.ascontiguousarray(item_factors, dtype=np.float32)).to(device)
    row_of = {}
    for i, u in enumerate(users.tolist()):
        row_of.setdefault(u, []).append(i)
    for block in _blocks(Y, matrix, params, np.unique(users[matrix.counts()[users] > 0])):
        rows = np.concatenate([row_of[int(u)] for u in block.users])
        owners = np.repeat(np.arange(len(block.users)), [len(row_of[int(u)]) for u in block.users])
        rec = torch.from_numpy(recommended[rows]).to(Y.device)
        A, Yb, conf, mask, movies = (
            block.A[owners],
            block.Y[owners],
            block.conf[owners],
            block.mask[owners],
            block.movies[owners],
        )
        z = torch.linalg.solve(A, Y[rec].transpose(1, 2))  # (R, k, K)
        contrib = (Yb @ z) * conf.unsqueeze(2)  # (R, n, K): rated movie i's part of each score
        contrib = torch.where(mask.unsqueeze(2), contrib, -torch.inf)
        best = contrib.argmax(dim=1)  # (R, K)
        top = contrib.gather(1, best.unsqueeze(1)).squeeze(1)
        total = torch.where(mask.unsqueeze(2), contrib, 0.0).sum(dim=1)
        because[rows] = movies.gather(1, best).cpu().numpy()
        share[rows] = (top / torch.where(total.abs() > 1e-12, total, 1.0)).cpu().numpy()
    return because, share
