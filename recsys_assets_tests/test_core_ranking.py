import math

import numpy as np
import pytest

from recsys_assets.core.ranking import popularity_top_n, ranking_metrics, top_n
from recsys_assets.core.training import seen_matrix


def test_metrics_match_hand_computed_values():
    recommended = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    relevant = {0: {2, 9}, 1: {4, 5, 6, 10}, 2: set()}
    m = ranking_metrics(recommended, np.array([0, 1, 2]), relevant, k=3, n_movies=20)
    # user 0: one hit at rank 2 of 2 relevant; user 1: three hits of 4 relevant; user 2 has nothing relevant
    assert m["precision_at_3"] == pytest.approx((1 / 3 + 3 / 3) / 2)
    assert m["recall_at_3"] == pytest.approx((1 / 2 + 3 / 4) / 2)
    ndcg0 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert m["ndcg_at_3"] == pytest.approx((ndcg0 + 1.0) / 2)
    assert m["hit_rate_at_3"] == 1.0 and m["users_evaluated"] == 2
    assert m["coverage"] == pytest.approx(9 / 20)


def test_top_n_excludes_seen_movies_and_ranks_by_score():
    rng = np.random.default_rng(0)
    P, Q = rng.normal(size=(30, 4)), rng.normal(size=(50, 4))
    bu, bi = rng.normal(size=30), rng.normal(size=50)
    users = rng.integers(0, 30, 300)
    movies = rng.integers(0, 50, 300)
    indptr, indices = seen_matrix(users, movies, 30)
    result = top_n(P, bu, Q, bi, 3.5, indptr, indices, k=5, block=7)
    full = P @ Q.T + bi + bu[:, None] + 3.5
    for u in range(30):
        seen = set(indices[indptr[u] : indptr[u + 1]].tolist())
        assert not seen & set(result.movies[u].tolist())
        candidates = [m for m in np.argsort(-full[u]) if m not in seen][:5]
        assert result.movies[u].tolist() == candidates
        assert np.all(np.diff(result.scores[u]) <= 0)


def test_popularity_baseline_skips_seen():
    counts = np.array([5, 50, 20, 40, 1])
    indptr, indices = seen_matrix(np.array([0, 0]), np.array([1, 3]), 2)
    recs = popularity_top_n(counts, np.array([0, 1]), indptr, indices, k=2)
    assert recs.tolist() == [[2, 0], [1, 3]]
