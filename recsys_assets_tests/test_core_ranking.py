import math

import numpy as np
import pytest
import torch

from recsys_assets.core.ids import IdMapping
from recsys_assets.core.ranking import (
    HeldOut,
    IALSParams,
    UserItems,
    compare,
    confidence,
    explain,
    fit_ials,
    popularity_top_n,
    ranking_metrics,
    seen_matrix,
    solve_users,
    top_n,
)
from recsys_assets.core.ranking.blend import Weights
from recsys_assets.core.ranking.ials import ials_device, implicit_has_cuda
from recsys_assets.core.ranking.itemitem import fit_item_item
from recsys_assets.core.ranking.model import RankingModel
from recsys_assets.core.ranking.params import ItemItemParams
from recsys_assets.core.ranking.train import Ratings
from recsys_assets.core.rating.model_file import ModelFileError


def _synthetic(n_users=80, n_movies=60, per_user=15, seed=0):
    """Ratings with structure: two taste groups that like different halves of the catalogue."""
    rng = np.random.default_rng(seed)
    users, movies, ratings = [], [], []
    for u in range(n_users):
        liked = np.arange(n_movies // 2) if u % 2 == 0 else np.arange(n_movies // 2, n_movies)
        picks = rng.choice(liked, per_user, replace=False)
        users += [u] * per_user
        movies += picks.tolist()
        ratings += rng.choice([3.0, 3.5, 4.0, 4.5, 5.0], per_user).tolist()
    return np.array(users), np.array(movies), np.array(ratings, dtype=np.float32)


def test_metrics_match_hand_computed_values():
    recommended = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    held = HeldOut.from_sets({0: {2, 9}, 1: {4, 5, 6, 10}, 2: set()}, n_users=3, n_movies=20)
    m = ranking_metrics(recommended, np.array([0, 1, 2]), held, k=3).metrics
    # user 0: one hit at rank 2 of 2 relevant; user 1: three hits of 4 relevant; user 2 has nothing relevant
    assert m["precision_at_3"] == pytest.approx((1 / 3 + 3 / 3) / 2)
    assert m["recall_at_3"] == pytest.approx((1 / 2 + 3 / 4) / 2)
    ndcg0 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert m["ndcg_at_3"] == pytest.approx((ndcg0 + 1.0) / 2)
    assert m["hit_rate_at_3"] == 1.0 and m["users_evaluated"] == 2
    assert m["coverage"] == pytest.approx(9 / 20)


def test_median_rating_count_and_paired_noise():
    held = HeldOut.from_sets({0: {1}, 1: {2}}, n_users=2, n_movies=4)
    counts = np.array([100, 5, 7, 1])
    a = ranking_metrics(np.array([[1, 0], [2, 0]]), np.array([0, 1]), held, k=2, movie_counts=counts)
    b = ranking_metrics(np.array([[0, 3], [0, 3]]), np.array([0, 1]), held, k=2, movie_counts=counts)
    assert a.metrics["median_rating_count"] == pytest.approx(np.median([5, 100, 7, 100]))
    assert a.ndcg_per_user.tolist() == [1.0, 1.0] and b.ndcg_per_user.tolist() == [0.0, 0.0]
    verdict = compare(a, b, k=2)
    assert verdict.beats and verdict.gap == 1.0 and verdict.standard_error == 0.0
    assert compare(b, a, k=2).loses_beyond_noise


def test_top_n_excludes_seen_movies_and_ranks_by_score():
    rng = np.random.default_rng(0)
    P, Q = rng.normal(size=(30, 4)), rng.normal(size=(50, 4))
    bi = rng.normal(size=50)
    users = rng.integers(0, 30, 300)
    movies = rng.integers(0, 50, 300)
    pairs = np.unique(users * 50 + movies)
    seen = UserItems.from_pairs(pairs // 50, pairs % 50, 30, 50)
    result = top_n(P, Q, seen, k=5, block=7, movie_bias=bi)
    full = P @ Q.T + bi
    for u in range(30):
        seen_u = set(seen.row(u).tolist())
        assert not seen_u & set(result.movies[u].tolist())
        candidates = [m for m in np.argsort(-full[u]) if m not in seen_u][:5]
        assert result.movies[u].tolist() == candidates
        assert np.all(np.diff(result.scores[u]) <= 0)
    indptr, indices = seen_matrix(pairs // 50, pairs % 50, 30)
    assert indptr.tolist() == seen.indptr.tolist() and indices.tolist() == seen.indices.tolist()


def test_popularity_baseline_skips_seen():
    counts = np.array([5, 50, 20, 40, 1])
    seen = UserItems.from_pairs(np.array([0, 0]), np.array([1, 3]), 2, 5)
    recs = popularity_top_n(counts, np.array([0, 1]), seen, k=2)
    assert recs.tolist() == [[2, 0], [1, 3]]
    nearly_all = UserItems.from_pairs(np.zeros(4, int), np.array([0, 1, 2, 3]), 1, 5)
    short = popularity_top_n(counts, np.array([0]), nearly_all, k=3)
    assert short.tolist() == [[4, -1, -1]]  # one unseen movie left: the list is padded, not broken
    held = HeldOut.from_sets({0: {4}}, n_users=1, n_movies=5)
    assert ranking_metrics(short, np.array([0]), held, k=3).metrics["coverage"] == pytest.approx(1 / 5)


def test_confidence_grows_with_the_rating():
    params = IALSParams(alpha=1.0, confidence_exponent=1.0)
    assert confidence(np.array([0.5, 5.0]), params).tolist() == pytest.approx([1.5, 6.0])  # 1 + rating
    steep = confidence(np.array([2.5, 5.0]), IALSParams(alpha=1.0, confidence_exponent=2.0))
    assert steep.tolist() == pytest.approx([1 + 5 * 0.25, 6.0])


@pytest.mark.parametrize(
    "field,value",
    [
        ("regularization", float("nan")),
        ("alpha", -1.0),
        ("factors", 0),
        ("confidence_exponent", float("inf")),
        ("iterations", 0),
    ],
)
def test_params_refuse_nonsense(field, value):
    with pytest.raises(ValueError, match=field):
        IALSParams(**{field: value})


def test_user_solve_is_the_exact_least_squares_solution():
    users, movies, ratings = _synthetic()
    matrix = UserItems.from_pairs(users, movies, 80, 60, ratings)
    params = IALSParams(factors=8, regularization=3.0, iterations=5)
    Y = np.random.default_rng(1).normal(0, 0.3, (60, 8)).astype(np.float32)
    X = solve_users(Y, matrix, params)
    u = 5
    c = np.zeros(60)
    c[matrix.row(u)] = confidence(matrix.row_values(u), params)
    p = (c > 0).astype(float)
    C = np.where(c > 0, c, 1.0)  # unrated movies weigh 1
    A = (Y.T * C) @ Y + 3.0 * np.eye(8)
    expected = np.linalg.solve(A, (Y.T * C) @ p)
    assert X[u] == pytest.approx(expected, abs=1e-4)


def test_fold_in_agrees_with_a_full_refit():
    users, movies, ratings = _synthetic(seed=3)
    params = IALSParams(factors=8, regularization=2.0, iterations=20, seed=1)
    newcomer = users == 7
    without = UserItems.from_pairs(users[~newcomer], movies[~newcomer], 80, 60, ratings[~newcomer])
    with_all = UserItems.from_pairs(users, movies, 80, 60, ratings)
    partial = fit_ials(without, params)
    full = fit_ials(with_all, params)
    model = RankingModel(
        partial.user_factors, partial.item_factors, IdMapping(np.arange(80)), IdMapping(np.arange(60)), without, params
    )
    x, _ = model.fold_in(movies[newcomer], ratings[newcomer])
    folded = partial.item_factors @ x
    refit = full.item_factors @ full.user_factors[7]
    assert np.corrcoef(folded, refit)[0, 1] > 0.9
    rated = set(movies[newcomer].tolist())
    top_fold = [m for m in np.argsort(-folded) if m not in rated][:10]
    top_refit = [m for m in np.argsort(-refit) if m not in rated][:10]
    assert all(m >= 30 for m in top_fold)  # user 7's taste group likes the second half of the catalogue
    # fold-in's picks are nearly as good as the refit's own, judged by the refit
    assert refit[top_fold].mean() >= 0.95 * refit[top_refit].mean()
    # a user the model knows folds back in to its own published factors
    x_known, _ = model.fold_in(without.row(3), without.row_values(3))
    assert x_known == pytest.approx(partial.user_factors[3], abs=1e-4)


def test_explanations_name_a_rated_movie_and_add_up_to_the_score():
    users, movies, ratings = _synthetic(seed=4)
    matrix = UserItems.from_pairs(users, movies, 80, 60, ratings)
    params = IALSParams(factors=8, regularization=2.0, iterations=10)
    model = fit_ials(matrix, params)
    result = top_n(model.user_factors, model.item_factors, matrix, k=5)
    because, share = explain(model.item_factors, matrix, params, result.users, result.movies)
    for u in range(80):
        assert set(because[u].tolist()) <= set(matrix.row(u).tolist())
        assert not set(result.movies[u].tolist()) & set(matrix.row(u).tolist())
    # the parts are exact: the named movie's part is the largest, and the shares are at most 1
    u, j = 0, int(result.movies[0, 0])
    Y = model.item_factors.astype(np.float64)
    c = confidence(matrix.row_values(u), params).astype(np.float64)
    Yi = Y[matrix.row(u)]
    A = Y.T @ Y + (Yi.T * (c - 1)) @ Yi + params.regularization * np.eye(8)
    parts = c * (Yi @ np.linalg.solve(A, Y[j]))
    assert parts.sum() == pytest.approx(float(result.scores[0, 0]), rel=1e-3)
    assert matrix.row(u)[np.argmax(parts)] == because[0, 0]
    assert share[0, 0] == pytest.approx(parts.max() / parts.sum(), rel=1e-3)


def test_ranking_file_round_trip_and_damage_is_refused(tmp_path):
    users, movies, ratings = _synthetic()
    matrix = UserItems.from_pairs(users, movies, 80, 60, ratings)
    params = IALSParams(factors=4, iterations=2)
    fitted = fit_ials(matrix, params)
    items = fit_item_item(matrix, ItemItemParams(neighbours=10))
    assert items is not None and items.method == "ease"
    model = RankingModel(
        fitted.user_factors,
        fitted.item_factors,
        IdMapping(np.arange(80) * 10),
        IdMapping(np.arange(60) + 1000),
        matrix,
        params,
        metrics={"val_ndcg_at_10": 0.3},
        evaluation=(fitted.user_factors, fitted.item_factors),
        weights=Weights(0.5, 0.5, -0.1),
        item_item=items.weights,
        evaluation_item_item=items.weights,
        item_exponent=items.rating_exponent,
    )
    path = model.save(tmp_path / "ranking_model.pth")
    payload = torch.load(path, weights_only=True)  # no pickle of arbitrary objects
    assert payload["architecture"] == "blend" and payload["trained_on"] == "train+val"
    back = RankingModel.load(path)
    assert back.user_factors == pytest.approx(model.user_factors) and back.params == params
    assert back.users.ids.tolist() == model.users.ids.tolist() and back.evaluation is not None
    assert back.weights == Weights(0.5, 0.5, -0.1) and back.item_item is not None
    assert back.item_item.values == pytest.approx(items.weights.values)
    assert (back.top_n(np.arange(80), 5).movies == model.top_n(np.arange(80), 5).movies).all()
    assert back.item_exponent == items.rating_exponent == 1.0  # the item-item part reads ratings as it learnt them
    # a format-2 file from before the rating-weighted item-item model reads every rated movie as 1
    torch.save({k: v for k, v in payload.items() if k != "item_exponent"}, tmp_path / "binary.pth")
    assert RankingModel.load(tmp_path / "binary.pth").item_exponent == 0.0
    # a format-1 file (iALS alone, before the blends) still loads, as iALS alone
    added = {f"{p}_{k}" for p in ("item", "eval_item") for k in ("indptr", "indices", "weights")} | {"blend"}
    old = {k: v for k, v in payload.items() if k not in added}
    torch.save({**old, "format_version": 1, "architecture": "ials"}, tmp_path / "v1.pth")
    v1 = RankingModel.load(tmp_path / "v1.pth")
    assert v1.weights == Weights(1.0, 0.0, 0.0) and v1.item_item is None

    def damaged(name, change):
        bad = dict(payload)
        change(bad)
        torch.save(bad, tmp_path / name)
        return tmp_path / name

    cases = {
        "nan.pth": (lambda p: p.__setitem__("item_factors", torch.full_like(p["item_factors"], float("nan"))), "NaN"),
        "range.pth": (
            lambda p: p.__setitem__("seen_indices", p["seen_indices"] + 1000),
            "movies the model does not have",
        ),
        "shape.pth": (lambda p: p.__setitem__("user_factors", p["user_factors"][:5]), "user rows"),
        "missing.pth": (lambda p: p.pop("seen_ratings"), "not a recsys_assets ranking model"),
        "order.pth": (lambda p: p.__setitem__("user_ids", p["user_ids"].flip(0)), "not sorted"),
        "items.pth": (lambda p: p.__setitem__("item_indices", p["item_indices"] + 1000), "item weights name movies"),
        "blend.pth": (lambda p: p.pop("item_indptr"), "item-item weights that the file does not hold"),
        "weights.pth": (lambda p: p.__setitem__("blend", {"factors": float("inf")}), "blend weights are not finite"),
        "exponent.pth": (lambda p: p.__setitem__("item_exponent", -1.0), "item_exponent must be between"),
    }
    for name, (change, message) in cases.items():
        with pytest.raises(ModelFileError, match=message):
            RankingModel.load(damaged(name, change))


def test_cuda_only_when_implicit_can():
    cuda = torch.device("cuda")
    if implicit_has_cuda():
        assert ials_device(cuda, explicit=True) == (cuda, None)
    else:
        with pytest.raises(RuntimeError, match="no CUDA support"):
            ials_device(cuda, explicit=True)
        device, note = ials_device(cuda, explicit=False)
        assert device.type == "cpu" and "CPU" in note
    assert ials_device(torch.device("cpu"), explicit=True) == (torch.device("cpu"), None)


def test_capacity_is_chosen_on_an_inner_split_and_only_for_a_clear_gain():
    from recsys_assets.core.ranking.train import select_params

    users, movies, ratings = _synthetic(n_users=200, n_movies=60, per_user=20, seed=6)
    train = Ratings(users, movies, ratings)
    base = IALSParams(factors=8, iterations=5)
    fixed = select_params(train, 200, 60, base, [8], [3.0])
    assert fixed.params.regularization == 3.0 and fixed.candidates == []  # one value: no fitting
    # a first candidate regularized to nothing loses clearly: the second replaces it
    clear = select_params(train, 200, 60, base, [8], [1e7, 3.0])
    assert clear.params.regularization == 3.0 and [c["chosen"] for c in clear.candidates] == [False, True]
    # the same setting twice: no gain beyond noise, the first (the default) stays
    tie = select_params(train, 200, 60, base, [8, 8], [3.0])
    assert tie.candidates[0]["chosen"] and not tie.candidates[1]["chosen"]
    # the validation split plays no part: the choice reads the training ratings only
    assert clear.inner_users == 200


def test_a_block_of_identical_users_counts_as_one_in_the_headline_ndcg():
    """The shilling case: 300 bots rate the same movies and are trivially predictable; however the split
    fell for each, the mean NDCG weighs them as one user, so they cannot lift the headline figure."""
    from recsys_assets.core.ranking import HeldOut, UserItems, evaluate_rankers
    from recsys_assets.core.ranking.metrics import profile_weights

    n_real, n_bots, n_movies, planted = 20, 300, 50, 49
    rng = np.random.default_rng(0)
    users, movies, ratings = [], [], []
    for u in range(n_real):  # real users: their own movies
        picked = rng.choice(40, 8, replace=False)
        users += [u] * 8
        movies += picked.tolist()
        ratings += rng.integers(1, 6, 8).astype(float).tolist()
    for b in range(n_bots):  # bots: the same 6 movies rated 5, one of them (a different one each) held out
        kept = [m for m in (0, 1, 2, 3, 4, planted) if m != (b % 5)]
        users += [n_real + b] * 5
        movies += kept
        ratings += [5.0] * 5
    n_users = n_real + n_bots
    train = UserItems.from_pairs(np.array(users), np.array(movies), n_users, n_movies, np.array(ratings))
    held_users = np.arange(n_users)
    held_movies = np.where(held_users < n_real, 45, held_users % 5)  # the real users' relevant movie is never listed
    held = HeldOut.from_ratings(held_users, held_movies, np.full(n_users, 5.0), n_users, n_movies)

    def plant(users, k):  # lists the popular movies first for everyone: each bot's held-out movie is a hit
        return np.tile(np.r_[np.arange(5), np.arange(10, 10 + k - 5)], (len(users), 1))

    weights = profile_weights(train, held.users, held)
    assert weights is not None and np.isclose(weights[n_real:].sum(), 1.0) and (weights[:n_real] == 1).all()
    scores = evaluate_rankers({"plant": plant}, train, held)["plant"]
    bots = scores.ndcg_per_user[n_real:]
    assert (bots > 0).all() and scores.metrics["ndcg_at_10"] == pytest.approx(bots.mean() / (n_real + 1))
    real_only = UserItems.from_pairs(np.array(users[: n_real * 8]), np.array(movies[: n_real * 8]), n_users, n_movies)
    assert profile_weights(real_only, np.arange(n_real)) is None  # no block: plain means, unchanged
    by_training_alone = profile_weights(train, held.users)  # the split fell 5 ways: 5 blocks, not one
    assert by_training_alone is not None and np.isclose(by_training_alone[n_real:].sum(), 5.0)
