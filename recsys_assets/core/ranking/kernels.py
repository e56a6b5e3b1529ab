"""The hot loops of the ranking step, compiled (Numba), rows in parallel.

* :func:`rows_times`: ``(A[rows] @ B).toarray()`` for CSR matrices, each row accumulated straight into
  its dense output row. SciPy computes it as a sparse product (sorting and merging every output row, on
  one core) and then expands it. The item-item scores of a block of users.
* :func:`strongest_products`: for every row ``i`` of ``A @ B``, scaled by ``column_scale``, the ``k``
  largest positive entries off the diagonal, without ever holding a dense block: RP3beta's co-occurrences
  and their top ``neighbours``.
* :func:`blend_top_k`: for a block of users and each set of blend weights, the top ``k`` movies of
  ``w_f z(factors) + w_i z(items) + w_p popularity`` (``z``: standardized per row), seen movies masked.
  One pass per weight over each row instead of a dozen block-sized temporaries and a ``topk``.
* :func:`csr_order`: the order that sorts (user, movie) pairs by user, then movie (``np.lexsort``'s), as a
  counting sort by user and a sort of each row's movies, rows in parallel: the CSR matrix of every step.

On the 25M-rating export these were most of the ranking step's time. Ties keep the lower movie index
first. Without Numba the callers run their SciPy/PyTorch paths (same results up to float32 rounding).
"""

import numpy as np

from recsys_assets.core.threads import cpu_threads

try:
    import numba
except ImportError:  # pragma: no cover - Numba is a declared dependency
    numba = None


if numba is not None:

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _rows_times(a, rows, b, out):  # pragma: no cover - compiled; a, b: CSR (indptr, indices, data)
        a_indptr, a_indices, a_data = a
        b_indptr, b_indices, b_data = b
        for r in numba.prange(len(rows)):  # pyright: ignore[reportOptionalMemberAccess] - compiled only with numba
            acc = out[r]
            row = rows[r]
            for p in range(a_indptr[row], a_indptr[row + 1]):
                j = a_indices[p]
                x = a_data[p] if len(a_data) else np.float32(1.0)
                for q in range(b_indptr[j], b_indptr[j + 1]):
                    acc[b_indices[q]] += x * b_data[q]

    @numba.njit(cache=True, nogil=True)
    def _insert(value, index, top_v, top_i, count):  # pragma: no cover - compiled
        """Insert into the descending ``top_v`` (capacity ``len(top_v)``, ``count`` filled); the new count."""
        k = len(top_v)
        if count == k and not value > top_v[k - 1]:
            return count
        pos = min(count, k - 1)
        while pos > 0 and value > top_v[pos - 1]:  # strictly greater: the lower index stays first on a tie
            top_v[pos], top_i[pos] = top_v[pos - 1], top_i[pos - 1]
            pos -= 1
        top_v[pos], top_i[pos] = value, index
        return min(count + 1, k)

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _strongest(a, b, scale, chunks, out):  # pragma: no cover - compiled; a, b: CSR (indptr, indices, data)
        (a_indptr, a_indices, a_data), (b_indptr, b_indices, b_data) = a, b
        out_i, out_v, out_n = out
        n = len(scale)
        for c in numba.prange(chunks):  # pyright: ignore[reportOptionalMemberAccess] - compiled only with numba
            acc, touched, mark = np.zeros(n, np.float32), np.empty(n, np.int64), np.zeros(n, np.bool_)
            for i in range(c, a_indptr.shape[0] - 1, chunks):  # interleaved rows: balanced work per chunk
                m = 0
                for p in range(a_indptr[i], a_indptr[i + 1]):
                    x = a_data[p]
                    for q in range(b_indptr[a_indices[p]], b_indptr[a_indices[p] + 1]):
                        j = b_indices[q]
                        if not mark[j]:
                            mark[j], touched[m], m = True, j, m + 1
                        acc[j] += x * b_data[q]
                count = 0
                for t in range(m):
                    j = touched[t]
                    v = acc[j] * scale[j]
                    acc[j], mark[j] = 0.0, False
                    if j != i and v > 0:
                        count = _insert(v, j, out_v[i], out_i[i], count)
                out_n[i] = count

    @numba.njit(cache=True, nogil=True)
    def _mean_std(x):  # pragma: no cover - compiled
        """Mean and sample standard deviation (as ``torch.std``), at least 1e-12, in float64."""
        total = 0.0
        for v in x:
            total += v
        mean = total / len(x)
        squares = 0.0
        for v in x:
            squares += (v - mean) ** 2
        return mean, max(np.sqrt(squares / max(len(x) - 1, 1)), 1e-12)

    @numba.njit(cache=True, nogil=True)
    def _weighted_scores(buf, parts, r, w, stats):  # pragma: no cover - compiled
        """One weight's blended scores of user row ``r`` into ``buf`` (each score standardized per user)."""
        factors, items, popularity, coef = parts
        mf, sf, mi, si = stats
        a, b, c = coef[w, 0] / sf, coef[w, 1] / si, coef[w, 2]
        const = -(a * mf + b * mi)
        for j in range(len(popularity)):
            buf[j] = c * popularity[j] + const
        if coef[w, 0] != 0:
            for j in range(len(popularity)):
                buf[j] += a * factors[r, j]
        if coef[w, 1] != 0:
            for j in range(len(popularity)):
                buf[j] += b * items[r, j]

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _blend(parts, seen, mask, out):  # pragma: no cover - compiled
        factors, items, popularity, coef = parts
        seen_indptr, seen_indices, rows = seen
        out_m, out_s = out
        n = len(popularity)
        for r in numba.prange(len(rows)):  # pyright: ignore[reportOptionalMemberAccess] - compiled only with numba
            buf = np.empty(n, np.float32)
            mf, sf = _mean_std(factors[r]) if factors.shape[0] else (0.0, 1.0)
            mi, si = _mean_std(items[r]) if items.shape[0] else (0.0, 1.0)
            for w in range(coef.shape[0]):
                _weighted_scores(buf, parts, r, w, (mf, sf, mi, si))
                if mask:
                    for p in range(seen_indptr[rows[r]], seen_indptr[rows[r] + 1]):
                        buf[seen_indices[p]] = -np.inf
                count = 0
                for j in range(n):
                    count = _insert(buf[j], j, out_s[w, r], out_m[w, r], count)

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _csr_order(users, movies, indptr):  # pragma: no cover - compiled
        order, fill = np.empty(len(users), np.int64), indptr[:-1].copy()
        for i in range(len(users)):  # a stable counting sort by user
            order[fill[users[i]]] = i
            fill[users[i]] += 1
        for u in numba.prange(len(indptr) - 1):  # pyright: ignore[reportOptionalMemberAccess] - compiled only with numba
            row = order[indptr[u] : indptr[u + 1]]
            keys = movies[row]
            if len(row) > 1 and np.any(keys[1:] < keys[:-1]):
                row[:] = row[np.argsort(keys, kind="mergesort")]  # stable: equal pairs keep their order
        return order


def _threads() -> None:
    numba.set_num_threads(min(cpu_threads(), numba.config.NUMBA_NUM_THREADS))  # type: ignore[union-attr]  # pyright: ignore[reportPrivateImportUsage, reportOptionalMemberAccess]


def _csr_parts(matrix, ones: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One dtype per array, so that the kernel compiles once; an empty value array reads as all ones."""
    data = matrix.data if hasattr(matrix, "data") else matrix.values
    data = np.empty(0, np.float32) if ones or data is None else np.asarray(data, dtype=np.float32)
    return np.asarray(matrix.indptr, dtype=np.int64), np.asarray(matrix.indices, dtype=np.int32), data


def _shape(matrix) -> tuple[int, int]:
    return matrix.shape if hasattr(matrix, "shape") else (matrix.n_users, matrix.n_movies)


def _scipy(matrix):
    return matrix if hasattr(matrix, "shape") else matrix.to_scipy()


def rows_times(a, rows: np.ndarray, b, *, binary: bool = False, compiled: bool | None = None) -> np.ndarray:
    """``(a[rows] @ b).toarray()`` as float32, for CSR matrices ``a`` and ``b`` (``scipy.sparse.csr_matrix`` or
    :class:`~recsys_assets.core.ranking.interactions.UserItems`); ``rows`` index into ``a``.

    ``binary``: every stored value of ``a`` counts as 1. ``compiled``: force (True) or avoid (False) the
    Numba kernel; by default it runs when Numba is installed."""
    rows = np.asarray(rows, dtype=np.int64)
    (_, inner), (inner_b, n_cols) = _shape(a), _shape(b)
    if inner != inner_b:
        raise ValueError(f"cannot multiply {_shape(a)} by {_shape(b)}")
    use_numba = numba is not None if compiled is None else compiled
    if not use_numba:
        a_rows = _scipy(a)[rows]
        if binary:
            a_rows.data = np.ones(len(a_rows.data), dtype=np.float32)
        return np.asarray((a_rows @ _scipy(b)).toarray(), dtype=np.float32)
    if numba is None:
        raise RuntimeError("the compiled kernel needs Numba, which is not installed")
    out = np.zeros((len(rows), n_cols), dtype=np.float32)
    if len(rows):
        _threads()
        _rows_times(_csr_parts(a, binary), rows, _csr_parts(b, False), out)
    return out


def strongest_products(a, b, column_scale: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rows, columns, values)`` of the ``k`` largest positive entries off the diagonal of each row of
    ``(a @ b) * column_scale`` (square; ``a``, ``b``: ``scipy.sparse.csr_matrix``), largest first per row.

    Needs Numba (the caller's fallback is the dense blocks of :func:`rows_times` and ``torch.topk``)."""
    if numba is None:
        raise RuntimeError("the compiled kernel needs Numba, which is not installed")
    n = a.shape[0]
    if a.shape[1] != b.shape[0] or b.shape[1] != n or len(column_scale) != n:
        raise ValueError(f"need a square product: {a.shape} @ {b.shape}, scale {len(column_scale)}")
    k = max(min(k, n), 1)
    out_i, out_v, out_n = np.zeros((n, k), np.int64), np.zeros((n, k), np.float32), np.zeros(n, np.int64)
    _threads()
    chunks = max(1, min(n, 64 * cpu_threads()))
    scale = np.asarray(column_scale, dtype=np.float32)
    _strongest(_csr_parts(a, False), _csr_parts(b, False), scale, chunks, (out_i, out_v, out_n))
    keep = np.arange(k)[None, :] < out_n[:, None]
    return np.repeat(np.arange(n), out_n), out_i[keep], out_v[keep]


def blend_top_k(
    factors, items, popularity: np.ndarray, coef: np.ndarray, seen, users: np.ndarray, *, k: int, mask: bool
):
    """Top ``k`` movies (and scores) of each of ``users`` under each row ``(w_f, w_i, w_p)`` of ``coef``:
    ``w_f z(factors) + w_i z(items) + w_p popularity``, arrays ``(len(coef), len(users), k)``.

    ``factors``/``items``: the block's raw scores ``(len(users), movies)``, or None when no weight uses them;
    ``seen``: the :class:`UserItems` whose movies ``mask`` excludes. Needs Numba."""
    if numba is None:
        raise RuntimeError("the compiled kernel needs Numba, which is not installed")
    n, shape = len(popularity), (len(coef), len(users), k)
    none = np.empty((0, n), np.float32)
    factors = none if factors is None else np.ascontiguousarray(factors, dtype=np.float32)
    items = none if items is None else np.ascontiguousarray(items, dtype=np.float32)
    out_m, out_s = np.zeros(shape, np.int64), np.zeros(shape, np.float32)
    _threads()
    indptr, indices, _ = _csr_parts(seen, True)
    coef64, pop = np.asarray(coef, np.float64), np.asarray(popularity, np.float32)
    _blend((factors, items, pop, coef64), (indptr, indices, np.asarray(users, np.int64)), mask, (out_m, out_s))
    return out_m, out_s


def csr_order(users: np.ndarray, movies: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """``np.lexsort((movies, users))`` for int64 ``users``/``movies`` whose per-user counts ``indptr``
    (``n_users + 1`` cumulative) already holds; without Numba, ``np.lexsort`` itself."""
    if numba is None:
        return np.lexsort((movies, users))
    _threads()
    return _csr_order(users, movies, indptr)
