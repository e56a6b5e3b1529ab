"""The compiled CPU path (Numba) of :class:`~recsys_assets.core.rating.optim.FusedSGD`: whole epochs.

The eager CPU step is about fifteen PyTorch operations, each a pass over
batch-sized temporaries, and ``index_add_`` on the CPU is slow.  Here one call
runs a whole epoch; each batch takes two passes:

1. (parallel over ratings) gather each rating's user and movie rows and
   biases into scratch buffers and compute its error;
2. add every rating's update to its rows, in batch order, from the gathered
   (pre-step) values: one thread updates the user table, another the movie
   table.

Each row is written by one thread in batch order, so the result does not
depend on the number of threads and repeated rows in a batch add up as with
``index_add_``.  The error sum is accumulated in float64, in order.  The
training data is packed once into one :data:`RATING` record per rating, and
:func:`epoch_order` draws each epoch's shuffle in linear time.

It is used on the CPU when Numba is installed and ``FusedSGD(kernel="auto")``
(the default); without Numba the eager step and ``torch.randperm`` run.  The
first call compiles the kernel (a few seconds; cached on disk next to this
file when it is writable).
"""

import time
from typing import NamedTuple

import numpy as np
import torch

from recsys_assets.core.threads import ThreadTuner, cpu_threads

try:
    import numba
except ImportError:  # pragma: no cover - Numba is a declared dependency, but the eager step works without it
    numba = None

CHUNK_RATINGS = 1 << 18  # ratings per kernel call; the thread count may change between calls
PROBE_RATINGS = 1 << 16  # ratings in a call that measures another thread count
# one training rating as the kernel reads it: ids, rating minus the global mean, regularization weights
RATING = np.dtype(
    [("user", np.int32), ("movie", np.int32), ("residual", np.float32), ("w_user", np.float32), ("w_movie", np.float32)]
)


def available(tensor: torch.Tensor) -> bool:
    return numba is not None and tensor.device.type == "cpu" and tensor.dtype == torch.float32


if numba is not None:
    # reassociation lets the dot product vectorize; results are reproducible on one machine
    @numba.njit(parallel=True, cache=True, nogil=True, fastmath={"reassoc", "contract"})
    def _gather(
        P, Q, bu, bi, data, order, start, n, b_u_idx, b_i_idx, b_wu, b_wi, b_pu, b_qi, b_bu, b_bi, b_err
    ):  # pragma: no cover - compiled
        """Pass 1: the batch's rows, biases, weights and errors, copied into the batch buffers ``b_*``."""
        dim = P.shape[1]
        for k in numba.prange(n):  # pyright: ignore[reportOptionalMemberAccess] - compiled only with numba
            rec = data[order[start + k]]
            uk = rec.user
            ik = rec.movie
            b_u_idx[k] = uk
            b_i_idx[k] = ik
            b_wu[k] = rec.w_user
            b_wi[k] = rec.w_movie
            acc = np.float32(0.0)
            for d in range(dim):
                p = P[uk, d]
                q = Q[ik, d]
                b_pu[k, d] = p
                b_qi[k, d] = q
                acc += p * q
            b_u = bu[uk]
            b_i = bi[ik]
            b_bu[k] = b_u
            b_bi[k] = b_i
            b_err[k] = acc + b_u + b_i - rec.residual

    @numba.njit(cache=True, nogil=True, fastmath={"contract"})
    def _scatter(
        T, bias, index, weight, n, lr, shrink_scale, bias_scale, own, other, own_bias, err, Z, G
    ):  # pragma: no cover
        """Pass 2, one table: every rating's update added to its row, in batch order.

        With implicit feedback (``Z`` has rows; the user table only), ``T`` holds the effective user
        factors ``p_u + z_u``: the L2 shrink applies to ``p_u`` alone, and ``G`` adds up ``e * q_i``
        per user for the epoch's implicit-factor update (``core/rating/implicit_feedback.py``)."""
        dim = T.shape[1]
        implicit = Z.shape[0] > 0
        for k in range(n):
            t = index[k]
            w = weight[k]
            e = err[k]
            bias[t] -= lr * (e + (w * bias_scale) * own_bias[k])
            neg = -lr * e
            shrink = w * shrink_scale
            if implicit:
                for d in range(dim):
                    G[t, d] += e * other[k, d]
                    T[t, d] += shrink * (own[k, d] - Z[t, d]) + neg * other[k, d]
            else:
                for d in range(dim):
                    T[t, d] += shrink * own[k, d] + neg * other[k, d]

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _epoch(P, Q, bu, bi, data, order, batch_size, lr, reg_factors, reg_bias, b, Z, G):  # pragma: no cover
        """Every batch of an epoch; ``data`` holds one :data:`RATING` record per rating; ``Z`` and ``G``
        are the implicit feedback's tables, or empty without it."""
        total = 0.0
        shrink_scale = np.float32(-lr * reg_factors)
        n_all = order.shape[0]
        none = np.empty((0, 0), np.float32)
        for start in range(0, n_all, batch_size):
            n = min(batch_size, n_all - start)
            _gather(P, Q, bu, bi, data, order, start, n, b.u, b.i, b.wu, b.wi, b.pu, b.qi, b.bu, b.bi, b.err)
            for side in numba.prange(2):  # pyright: ignore[reportOptionalMemberAccess] - one thread per table
                if side == 0:
                    _scatter(P, bu, b.u, b.wu, n, lr, shrink_scale, reg_bias, b.pu, b.qi, b.bu, b.err, Z, G)
                else:
                    _scatter(Q, bi, b.i, b.wi, n, lr, shrink_scale, reg_bias, b.qi, b.pu, b.bi, b.err, none, none)
            for k in range(n):
                total += np.float64(b.err[k]) * np.float64(b.err[k])
        return total

    @numba.njit(parallel=True, cache=True, nogil=True, fastmath={"reassoc", "contract"})
    def _errors(P, Q, bu, bi, users, movies, ratings, mean, lo, hi):  # pragma: no cover - compiled
        """(sum of squared errors, of clamped squared errors, of clamped absolute errors) in float64."""
        sq = 0.0
        sq_clamped = 0.0
        abs_clamped = 0.0
        dim = P.shape[1]
        for k in numba.prange(users.shape[0]):  # pyright: ignore[reportOptionalMemberAccess]
            u = users[k]
            i = movies[k]
            acc = np.float32(0.0)
            for d in range(dim):
                acc += P[u, d] * Q[i, d]
            pred = acc + bu[u] + bi[i] + mean
            e = np.float64(pred) - np.float64(ratings[k])
            sq += e * e
            c = np.float64(min(max(pred, lo), hi)) - np.float64(ratings[k])
            sq_clamped += c * c
            abs_clamped += abs(c)
        return sq, sq_clamped, abs_clamped

    @numba.njit(parallel=True, cache=True, nogil=True, fastmath={"reassoc", "contract"})
    def _implicit_step(Y, Z, G, P, by_movie, by_user, scale, lr, reg):  # pragma: no cover - compiled
        """``core/rating/implicit_feedback.py``'s epoch step: ``by_movie``/``by_user`` are (indptr, indices) of the rated
        pairs grouped by movie and by user; ``scale[u] = |N(u)| ** -0.5``."""
        dim = Y.shape[1]
        m_ptr, m_users = by_movie
        u_ptr, u_movies = by_user
        for j in numba.prange(Y.shape[0]):  # pyright: ignore[reportOptionalMemberAccess]
            grad = np.zeros(dim, np.float32)
            for t in range(m_ptr[j], m_ptr[j + 1]):
                u = m_users[t]
                s = scale[u]
                for d in range(dim):
                    grad[d] += s * G[u, d]
            for d in range(dim):
                Y[j, d] -= lr * (grad[d] + reg * Y[j, d])
        for u in numba.prange(Z.shape[0]):  # pyright: ignore[reportOptionalMemberAccess]
            z = np.zeros(dim, np.float32)
            for t in range(u_ptr[u], u_ptr[u + 1]):
                j = u_movies[t]
                for d in range(dim):
                    z[d] += Y[j, d]
            s = scale[u]
            for d in range(dim):
                new = s * z[d]
                P[u, d] += new - Z[u, d]
                Z[u, d] = new
                G[u, d] = 0.0

    @numba.njit(cache=True, nogil=True, inline="always")
    def _uniform(state):  # pragma: no cover - compiled
        """splitmix64 step; a float in [0, 1) with 53 random bits."""
        state[0] += np.uint64(0x9E3779B97F4A7C15)
        z = state[0]
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
        return np.float64(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)

    @numba.njit(cache=True, nogil=True)
    def _shuffle_range(seed, out):  # pragma: no cover - compiled
        """``out[:] =`` a uniformly random permutation of ``range(len(out))`` (Rao-Sandelius):
        each index goes to a random bucket, buckets are laid out in order, then each bucket is
        Fisher-Yates shuffled. Every step works inside a cache-sized bucket, so it stays linear
        in time at 25M ratings where a plain Fisher-Yates pays a cache miss per swap."""
        state = np.full(1, np.uint64(seed))
        n = out.shape[0]
        n_buckets = max(1, min(65535, n // 4096))
        bucket = np.empty(n, np.uint16)
        starts = np.zeros(n_buckets + 1, np.int64)
        for k in range(n):
            b = min(int(_uniform(state) * n_buckets), n_buckets - 1)
            bucket[k] = b
            starts[b + 1] += 1
        for b in range(n_buckets):
            starts[b + 1] += starts[b]
        fill = starts[:-1].copy()
        for k in range(n):
            b = bucket[k]
            out[fill[b]] = k
            fill[b] += 1
        for b in range(n_buckets):
            lo = starts[b]
            for j in range(starts[b + 1] - 1, lo, -1):
                m = lo + min(int(_uniform(state) * (j - lo + 1)), j - lo)
                t = out[j]
                out[j] = out[m]
                out[m] = t


def epoch_order(n: int, generator: torch.Generator) -> torch.Tensor:
    """A random permutation of ``range(n)`` drawn from ``generator`` (its state advances, so a
    training resumed from a checkpoint of the generator state draws the same orders)."""
    if numba is None:
        return torch.randperm(n, generator=generator)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    out = np.empty(n, np.int64)
    _shuffle_range(seed, out)
    return torch.from_numpy(out)


class BatchBuffers(NamedTuple):
    """One batch's gathered inputs (pass 1's output, pass 2's input)."""

    u: np.ndarray
    i: np.ndarray
    wu: np.ndarray
    wi: np.ndarray
    pu: np.ndarray
    qi: np.ndarray
    bu: np.ndarray
    bi: np.ndarray
    err: np.ndarray

    @classmethod
    def empty(cls, n: int, dim: int) -> "BatchBuffers":
        f32 = np.float32
        return cls(
            np.empty(n, np.int32),
            np.empty(n, np.int32),
            np.empty(n, f32),
            np.empty(n, f32),
            np.empty((n, dim), f32),
            np.empty((n, dim), f32),
            np.empty(n, f32),
            np.empty(n, f32),
            np.empty(n, f32),
        )


class Scratch:
    """Batch buffers, reused across steps and epochs (allocating them costs page faults every step),
    and the training data packed once for the kernel: one 20-byte :data:`RATING` record per rating,
    so a shuffled read touches one cache line, not five."""

    def __init__(self):
        self._cache: dict = {}
        self._packed: tuple = ((), None)
        self.tuner: ThreadTuner | None = None  # created at the first epoch (it reads the CPU count then)

    def packed(self, ratings, global_mean: float):
        """``ratings`` (a ``WeightedRatings``) as one structured array, cached while its tensors are unchanged."""
        users, movies = ratings.users, ratings.movies
        tensors = (users, movies, ratings.ratings, ratings.w_user, ratings.w_movie)
        # the same tensor objects (held here, so never freed and replaced), unmodified since (_version)
        key = (tensors, tuple(t._version for t in tensors), global_mean)
        cached = self._packed[0]
        if not (cached and all(a is b for a, b in zip(cached[0], tensors)) and cached[1:] == key[1:]):
            self._packed = ((), None)  # free the old copy first
            n = users.shape[0]
            if n and int(max(users.max(), movies.max())) >= 2**31:
                raise ValueError("FusedSGD's CPU kernel takes at most 2**31 users and movies")
            data = np.empty(n, RATING)
            data["user"] = _np(users)
            data["movie"] = _np(movies)
            np.subtract(_np(ratings.ratings), np.float32(global_mean), out=data["residual"])
            data["w_user"] = _np(ratings.w_user)
            data["w_movie"] = _np(ratings.w_movie)
            self._packed = (key, data)
        return self._packed[1]

    def get(self, n: int, dim: int) -> BatchBuffers:
        key = (n, dim)
        if key not in self._cache:
            if len(self._cache) > 4:
                self._cache.clear()
            self._cache[key] = BatchBuffers.empty(n, dim)
        return self._cache[key]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


def sgd_epoch(
    model,
    data,
    order,
    *,
    batch_size: int,
    lr: float,
    reg_factors: float,
    reg_bias: float,
    scratch: Scratch,
    implicit=None,
) -> torch.Tensor:
    """Every batch of an epoch, in ``order``, on CPU tensors; returns the summed squared error (0-d tensor).

    ``data`` is a :class:`~recsys_assets.core.rating.optim.WeightedRatings` (ratings with
    per-rating regularization weights); the data is packed once per
    ``scratch`` and reused while the same tensors come back epoch after epoch.
    ``implicit`` is the :class:`~recsys_assets.core.rating.implicit_feedback.ImplicitFeedback`, if any.
    """
    P = model.user_factors.weight
    Q = model.movie_factors.weight
    bu = model.user_bias.weight
    bi = model.movie_bias.weight
    for t in (P, Q, bu, bi):
        if not t.is_contiguous():
            raise ValueError("FusedSGD's CPU kernel needs contiguous parameters")
    packed = scratch.packed(data, float(model.global_mean))
    batch_size = min(batch_size, max(1, len(order)))
    if scratch.tuner is None:
        scratch.tuner = ThreadTuner(_thread_limit())
    tensors = (_np(P), _np(Q), _np(bu).reshape(-1), _np(bi).reshape(-1))
    hyper = (np.float32(lr), np.float32(reg_factors), np.float32(reg_bias))
    buffers = scratch.get(batch_size, P.shape[1])
    none = np.empty((0, 0), np.float32)
    tables = (_np(implicit.z), _np(implicit.g)) if implicit is not None else (none, none)
    order_np = _np(order)
    # whole batches per chunk, so the batches (and the result) are the epoch's own whatever the chunking;
    # between chunks the tuner may change the thread count (ThreadTuner)
    chunk = batch_size * max(1, CHUNK_RATINGS // batch_size)
    probe = batch_size * max(1, PROBE_RATINGS // batch_size)  # a probe of another thread count is short
    total, start, n_all = 0.0, 0, len(order_np)
    while start < n_all:
        threads, probing = scratch.tuner.choose()
        part = order_np[start : start + (probe if probing else chunk)]
        numba.set_num_threads(threads)  # type: ignore[union-attr]
        t = time.perf_counter()
        total += _epoch(*tensors, packed, part, batch_size, *hyper, buffers, *tables)
        if len(part) == (probe if probing else chunk) or len(part) == n_all:  # an epoch's short tail is no measure
            scratch.tuner.record(threads, len(part), time.perf_counter() - t)
        start += len(part)
    return torch.tensor(total, dtype=torch.float32)


def squared_errors(model, users, movies, ratings, clamp: tuple[float, float]) -> tuple[float, float, float]:
    """:func:`~recsys_assets.core.rating.training.evaluate`'s three sums for a ``BiasedMF`` on CPU tensors, in one
    compiled pass (the PyTorch ops take ten times longer, which shows when validation runs every epoch)."""
    tables = (model.user_factors.weight, model.movie_factors.weight, model.user_bias.weight, model.movie_bias.weight)
    P, Q, bu, bi = (_np(t).reshape(t.shape[0], -1) for t in tables)
    for index, table in ((users, P), (movies, Q)):  # the compiled pass does not check bounds
        if len(index) and not 0 <= int(index.min()) <= int(index.max()) < len(table):
            raise IndexError("a user or movie index is out of range of the model's tables")
    _all_threads()  # one barrier per call: no contention collapse, so every CPU the process may use
    return _errors(
        P, Q, bu[:, 0], bi[:, 0], _np(users), _np(movies), _np(ratings), float(model.global_mean), *map(float, clamp)
    )


def implicit_step(implicit, user_factors: torch.Tensor, lr: float, reg: float) -> None:
    """:meth:`~recsys_assets.core.rating.implicit_feedback.ImplicitFeedback.step` in one compiled call (CPU tensors)."""
    _all_threads()
    _implicit_step(
        _np(implicit.y),
        _np(implicit.z),
        _np(implicit.g),
        _np(user_factors),
        implicit.by_movie,
        implicit.by_user,
        implicit.scale,
        np.float32(lr),
        np.float32(reg),
    )


def _thread_limit() -> int:
    """The CPUs this process may use (``cpu_threads``), within the threads Numba started with."""
    return min(cpu_threads(), numba.config.NUMBA_NUM_THREADS)  # type: ignore[union-attr]


def _all_threads() -> None:
    numba.set_num_threads(_thread_limit())  # type: ignore[union-attr]
