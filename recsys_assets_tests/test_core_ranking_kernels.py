"""The compiled ranking kernels give what the SciPy / PyTorch paths give: products, RP3beta, blended top-k."""

from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse

from recsys_assets.core.ranking import UserItems
from recsys_assets.core.ranking.blend import Components, Weights, blend_top_n_many
from recsys_assets.core.ranking.itemitem import fit_item_item, fit_rp3beta, item_scores
from recsys_assets.core.ranking.kernels import csr_order, numba, rows_times, strongest_products
from recsys_assets.core.ranking.params import ItemItemParams

from .test_core_ranking_candidates import _matrix


def _rp3beta(matrix: UserItems, neighbours: int) -> UserItems:
    model = fit_item_item(matrix, ItemItemParams(method="rp3beta", neighbours=neighbours))
    assert model is not None
    return model.weights


needs_numba = pytest.mark.skipif(numba is None, reason="Numba is not installed")


def _random_csr(rows, cols, density, seed):
    return scipy.sparse.random(rows, cols, density, format="csr", dtype=np.float32, random_state=seed)


@needs_numba
@pytest.mark.parametrize("binary", [False, True])
def test_the_kernel_matches_scipy_on_any_rows(binary):
    a, b = _random_csr(50, 40, 0.2, 1), _random_csr(40, 30, 0.3, 2)
    rows = np.array([7, 0, 49, 7, 3])  # unordered, repeated
    expected = a[rows].toarray()
    if binary:
        expected = (expected != 0).astype(np.float32)
    expected = expected @ b.toarray()
    compiled = rows_times(a, rows, b, binary=binary, compiled=True)
    assert compiled.shape == (5, 30) and compiled.dtype == np.float32
    np.testing.assert_allclose(compiled, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rows_times(a, rows, b, binary=binary, compiled=False), expected, rtol=1e-5, atol=1e-6)
    assert rows_times(a, np.empty(0, np.int64), b).shape == (0, 30)
    with pytest.raises(ValueError, match="cannot multiply"):
        rows_times(a, rows, _random_csr(30, 30, 0.3, 3))


@needs_numba
def test_item_scores_and_rp3beta_read_user_items_as_scipy_would():
    matrix = _matrix()
    weights = _rp3beta(matrix, 8)
    users = np.array([3, 1, 79])
    expected = (matrix.to_scipy(np.ones(matrix.nnz, np.float32))[users] @ weights.to_scipy()).toarray()
    np.testing.assert_allclose(item_scores(weights, matrix, users), expected, rtol=1e-5, atol=1e-6)
    # every kept weight is one of the strongest of its movie's RP3beta row, computed here densely
    X = matrix.to_scipy(np.ones(matrix.nnz, np.float32)).toarray()
    to_movie, to_user = X / X.sum(1, keepdims=True), (X / np.maximum(X.sum(0), 1)).T
    dense = (to_user @ to_movie) / np.maximum(X.sum(0), 1) ** 0.5
    np.fill_diagonal(dense, 0)
    eighth = np.sort(dense, axis=1)[:, -8]
    kept = UserItems.to_scipy(weights).toarray()
    assert ((kept == 0) | (kept >= eighth[:, None] - 1e-6)).all()
    np.testing.assert_allclose(kept[kept > 0], dense[kept > 0], rtol=1e-5)


@needs_numba
def test_the_strongest_products_are_the_dense_rows_largest_entries():
    a, b = _random_csr(40, 50, 0.15, 4), _random_csr(50, 40, 0.15, 5)
    scale = np.random.default_rng(6).uniform(0.5, 2.0, 40).astype(np.float32)
    rows, cols, vals = strongest_products(a, b, scale, 5)
    dense = (a @ b).toarray() * scale
    np.fill_diagonal(dense, 0)
    got = np.zeros_like(dense)
    got[rows, cols] = vals
    for i in range(40):
        positive = np.sort(dense[i][dense[i] > 0])[::-1][:5]
        np.testing.assert_allclose(np.sort(got[i][got[i] > 0])[::-1], positive, rtol=1e-5)
        assert got[i, i] == 0
    assert np.all(np.diff(vals)[np.diff(rows) == 0] <= 0)  # largest first within a row
    with pytest.raises(ValueError, match="square product"):
        strongest_products(a, a, scale, 5)


@needs_numba
def test_rp3beta_compiled_keeps_the_weights_of_the_dense_blocks():
    matrix = _matrix(n_users=120, n_movies=90, per_user=20, seed=3)
    params = ItemItemParams(method="rp3beta", neighbours=10)
    compiled = fit_rp3beta(matrix, params).to_scipy().toarray()
    full = fit_rp3beta(matrix, replace(params, neighbours=90), compiled=False, block=16).to_scipy().toarray()
    assert (compiled > 0).sum() > 0.9 * 90 * 10
    for i in range(90):  # each movie keeps weights of the dense blocks, its 10 largest (ties in any order)
        kept = compiled[i] > 0
        np.testing.assert_allclose(compiled[i, kept], full[i, kept], rtol=1e-5)
        np.testing.assert_allclose(np.sort(compiled[i, kept]), np.sort(full[i])[-kept.sum() :], rtol=1e-5)


@needs_numba
@pytest.mark.parametrize("mask", [True, False])
def test_the_blend_kernel_ranks_as_the_pytorch_path(mask):
    rng = np.random.default_rng(7)
    seen = _matrix(n_users=70, n_movies=60, per_user=12, seed=2)
    items = _rp3beta(seen, 15)
    parts = Components(
        rng.normal(size=(70, 6)).astype(np.float32),
        rng.normal(size=(60, 6)).astype(np.float32),
        items,
        seen.movie_counts(),
    )
    weights = [Weights(1, 0, 0), Weights(0, 1, 0), Weights(0.5, 0.5, 0.25), Weights(0, 0, 1), Weights(0.75, 0.25, -0.3)]
    users = np.array([5, 0, 69, 33])
    fast = blend_top_n_many(parts, weights, seen, users, 8, mask=mask, block=3)
    slow = blend_top_n_many(parts, weights, seen, users, 8, mask=mask, block=3, compiled=False)
    for f, s, w in zip(fast, slow, weights, strict=True):
        np.testing.assert_allclose(f.scores, s.scores, rtol=1e-4, atol=1e-4)
        if w != Weights(0, 0, 1):  # popularity alone ties among equally rated movies: any order is right
            np.testing.assert_array_equal(f.movies, s.movies)
    rated = seen.contains(users[:, None], fast[0].movies).any()
    assert rated != mask  # masked: nothing rated; unmasked: iALS alone ranks some rated movie in a top 8


@needs_numba
@pytest.mark.parametrize("seed", [0, 1])
def test_the_csr_order_is_lexsorts_order(seed):
    """Pairs in any order, repeated pairs, empty users, rows already sorted: the order np.lexsort gives."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 30, 2_000)
    users[users == 5] = 6  # user 5 rated nothing
    movies = rng.integers(0, 50, 2_000)
    sorted_rows = np.lexsort((movies, users))
    for u, m in ((users, movies), (users[sorted_rows], movies[sorted_rows])):
        indptr = np.concatenate([[0], np.cumsum(np.bincount(u, minlength=31))])
        order = csr_order(u, m, indptr)
        np.testing.assert_array_equal(order, np.lexsort((m, u)))
    matrix = UserItems.from_pairs(users, movies, 31, 50, ratings=np.arange(2_000, dtype=np.float32))
    assert matrix.values is not None
    np.testing.assert_array_equal(matrix.values, np.lexsort((movies, users)).astype(np.float32))
