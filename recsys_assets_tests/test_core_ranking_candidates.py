"""The ranking candidates: item-item models, blends, the choice on an inner split, diversity, coherent lists."""

from dataclasses import replace

import numpy as np
import pytest

from recsys_assets.core.ranking import HeldOut, UserItems, fit_ials, paired_gap, popularity_top_n, top_n
from recsys_assets.core.ranking.blend import Components, Weights, blend_top_n
from recsys_assets.core.ranking.itemitem import fit_item_item, fit_rp3beta, input_values, item_scores
from recsys_assets.core.ranking.params import IALSParams, ItemItemParams
from recsys_assets.core.ranking.train import CandidateSettings, Ratings, train_ranking_model
from recsys_assets.core.sample_data import SampleSpec, generate_ratings

from .test_core_ranking import _synthetic


def _matrix(n_users=80, n_movies=60, per_user=15, seed=0) -> UserItems:
    users, movies, ratings = _synthetic(n_users, n_movies, per_user, seed)
    return UserItems.from_pairs(users, movies, n_users, n_movies, ratings)


@pytest.mark.parametrize("method", ["ease", "rp3beta"])
def test_item_item_weights_link_movies_watched_together(method):
    matrix = _matrix()
    model = fit_item_item(matrix, ItemItemParams(method=method, neighbours=8))
    assert model is not None and model.method == method
    w = model.weights
    assert (w.counts() <= 8).all() and (w.values != 0).all()
    assert method == "ease" or (w.values > 0).all()  # RP3beta's walk has no negative weights; EASE's may
    rows = np.repeat(np.arange(60), w.counts())
    assert not (rows == w.indices).any()  # a movie is not its own neighbour
    same_half = (rows < 30) == (w.indices < 30)  # the two taste groups watch different halves
    assert same_half.mean() > 0.95


def test_ease_solves_only_the_rated_movies_and_equals_the_closed_form_on_the_whole_catalogue():
    inner = _matrix()  # 60 movies, each rated; spread them over 100 with 40 that nobody rated
    spread = np.sort(np.random.default_rng(3).choice(100, 60, replace=False))
    rows = np.repeat(np.arange(inner.n_users), inner.counts())
    matrix = UserItems.from_pairs(rows, spread[inner.indices], inner.n_users, 100)
    lam = 30.0
    weights = fit_item_item(
        matrix, ItemItemParams(method="ease", ease_lambda=lam, ease_dropout=0.0, neighbours=100)
    ).weights
    X = np.zeros((inner.n_users, 100))
    X[rows, spread[inner.indices]] = 1.0
    P = np.linalg.inv(X.T @ X + lam * np.eye(100))  # EASE on the whole catalogue, in float64
    B = P / -np.diag(P)[None, :]
    np.fill_diagonal(B, 0.0)
    dense = np.zeros((100, 100))
    dense[np.repeat(np.arange(100), weights.counts()), weights.indices] = weights.values
    assert np.allclose(dense, B, atol=1e-5)  # every weight kept (100 neighbours), none elsewhere
    assert weights.counts()[np.setdiff1d(np.arange(100), spread)].sum() == 0
    assert not np.isin(weights.indices, np.setdiff1d(np.arange(100), spread)).any()


def _ease_reference(
    matrix: UserItems, lam: float, exponent: float, dropout: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """EASE in float64 by the book: inputs ``(rating / 5) ** exponent``, ``B = I - P diag(1 / diag(P))``,
    ``P = (X'X + Lambda)^-1`` with ``Lambda = lambda I + p / (1 - p) diag(X'X)`` (EDLAE; plain EASE at p 0)."""
    X = matrix.to_scipy(input_values(matrix.values, exponent)).toarray().astype(np.float64)
    G = X.T @ X
    G += np.diag(lam * np.mean(X[X > 0] ** 2) + dropout / (1 - dropout) * np.diag(G))
    P = np.linalg.inv(G)
    B = P / -np.diag(P)
    np.fill_diagonal(B, 0.0)
    return X, B


@pytest.mark.parametrize(("exponent", "dropout"), [(0.0, 0.0), (1.0, 0.0), (2.0, 0.0), (1.0, 0.5), (0.0, 0.8)])
def test_ease_reads_ratings_and_keeps_its_strongest_weights_of_either_sign(exponent, dropout):
    matrix = _matrix()
    X, B = _ease_reference(matrix, 20.0, exponent, dropout)
    assert (B < -1e-3).any()  # a small lambda: EASE has negative weights here
    params = ItemItemParams(method="ease", ease_lambda=20.0, ease_dropout=dropout, rating_exponent=exponent)
    full = fit_item_item(matrix, replace(params, neighbours=59))
    assert full is not None and full.rating_exponent == exponent
    np.testing.assert_allclose(full.weights.to_scipy().toarray(), B, atol=2e-4)
    kept = fit_item_item(matrix, replace(params, neighbours=5))
    assert kept is not None
    W = kept.weights.to_scipy().toarray()
    for i in range(60):  # the five largest in size, negative ones included
        np.testing.assert_allclose(np.sort(np.abs(W[i][W[i] != 0])), np.sort(np.abs(B[i]))[-5:], atol=2e-4)
    users = np.array([7, 0, 79, 7])
    np.testing.assert_allclose(item_scores(kept.weights, matrix, users, exponent), X[users] @ W, atol=1e-4)
    if exponent:
        with pytest.raises(ValueError, match="need ratings"):
            item_scores(kept.weights, UserItems.from_pairs([0], [1], 80, 60), users, exponent)


def test_a_high_rating_counts_for_more_in_the_item_item_scores():
    """Two users who rated the same two movies, one high and one low: each is recommended what goes with
    the movie they liked (at exponent 0 both would get the same list)."""
    matrix = _matrix()
    items = fit_item_item(matrix, ItemItemParams(method="ease", neighbours=20))
    assert items is not None and items.rating_exponent == 1.0
    a, b = 3, 40  # movie 3 is in the first half (taste group 0), movie 40 in the second
    seen = UserItems.from_pairs([0, 0, 1, 1], [a, b, a, b], 2, 60, [5.0, 0.5, 0.5, 5.0])
    scores = item_scores(items.weights, seen, np.array([0, 1]), items.rating_exponent)
    first_half = np.arange(60) < 30
    assert scores[0, first_half].mean() > scores[0, ~first_half].mean()
    assert scores[1, ~first_half].mean() > scores[1, first_half].mean()
    binary = item_scores(items.weights, seen, np.array([0, 1]))
    np.testing.assert_allclose(binary[0], binary[1])


def test_edlae_shrinks_a_much_rated_movies_weights_more_than_a_rarely_rated_ones():
    """The dropout term raises each movie's penalty by its own squared inputs: compared with plain EASE at the
    same lambda, the weights from the most-rated movie shrink by more than those from the least-rated."""
    matrix = _matrix(n_users=200, per_user=12, seed=4)
    counts = matrix.movie_counts()
    popular, rare = int(np.argmax(counts)), int(np.argmin(counts))
    assert counts[popular] > 1.5 * counts[rare]
    _, plain = _ease_reference(matrix, 20.0, 1.0)
    _, dropped = _ease_reference(matrix, 20.0, 1.0, dropout=0.5)
    shrink = np.abs(dropped).sum(axis=1) / np.abs(plain).sum(axis=1)  # row i: the weights from movie i
    assert shrink[popular] < shrink[rare] < 1.0
    with pytest.raises(ValueError, match="ease_dropout"):
        ItemItemParams(ease_dropout=1.0)


def test_the_item_item_method_follows_the_memory_cap():
    assert ItemItemParams(max_ease_items=100).resolved(100) == "ease"
    assert ItemItemParams(max_ease_items=100).resolved(101) == "rp3beta"
    assert fit_item_item(_matrix(), ItemItemParams(method="none")) is None
    with pytest.raises(ValueError, match="item_item method"):
        ItemItemParams(method="knn")
    # RP3beta's co-occurrences from a sample of users still link the halves
    sampled = fit_rp3beta(_matrix(), ItemItemParams(neighbours=5, max_users=30))
    rows = np.repeat(np.arange(60), sampled.counts())
    assert ((rows < 30) == (sampled.indices < 30)).mean() > 0.9


def test_pure_blends_are_the_plain_rankers():
    matrix = _matrix()
    fitted = fit_ials(matrix, IALSParams(factors=4, iterations=3))
    parts = Components(fitted.user_factors, fitted.item_factors, None, matrix.movie_counts())
    users = np.arange(80)
    alone = blend_top_n(parts, Weights(1, 0, 0), matrix, users, 5).movies
    assert (alone == top_n(fitted.user_factors, fitted.item_factors, matrix, k=5).movies).all()
    popular = blend_top_n(parts, Weights(0, 0, 1), matrix, users, 5).movies
    counts = matrix.movie_counts()  # movies rated equally often may come in either order
    assert (counts[popular] == counts[popularity_top_n(counts, users, matrix, 5)]).all()
    with pytest.raises(ValueError, match="needs the item-item model"):
        blend_top_n(parts, Weights(0, 1, 0), matrix, users, 5)


def _ratings(spec: SampleSpec):
    table = generate_ratings(spec).to_pandas()
    users, movies = np.unique(table["userId"], return_inverse=True), np.unique(table["movieId"], return_inverse=True)
    rng = np.random.default_rng(0)
    val = rng.random(len(table)) < 0.2
    data = Ratings(users[1], movies[1], table["rating"].to_numpy(np.float32))
    pick = lambda m: Ratings(data.users[m], data.movies[m], data.ratings[m])  # noqa: E731
    return pick(~val), pick(val), len(users[0]), len(movies[0])


def test_on_ratings_drawn_by_popularity_alone_the_choice_never_loses_to_most_popular():
    spec = SampleSpec(n_ratings=30_000, n_users=600, n_movies=800, taste_weight=0.0, seed=11)
    train, val, n_users, n_movies = _ratings(spec)
    result = train_ranking_model(train, val, n_users, n_movies, IALSParams(factors=16, iterations=5))
    assert not result.comparison.loses_beyond_noise, result.comparison.describe()
    assert result.blend.weights.popularity > 0  # popularity is part of what was chosen
    assert any(c["blend"] == "most popular" for c in result.blend.candidates)


def test_the_default_diversity_widens_the_lists_without_losing_ndcg_beyond_noise():
    spec = SampleSpec(n_ratings=40_000, n_users=800, n_movies=1_500, seed=3)
    train, val, n_users, n_movies = _ratings(spec)
    params = IALSParams(factors=16, iterations=5)
    results = {
        d: train_ranking_model(train, val, n_users, n_movies, params, candidates=CandidateSettings(diversity=d))
        for d in (1.0, 0.0)
    }
    on, off = results[1.0], results[0.0]
    assert off.blend.penalty == 0.0 and on.blend.penalty > 0.0
    assert on.blend.weights.popularity == pytest.approx(off.blend.weights.popularity - on.blend.penalty)
    on_s, off_s = on.scores["ranking_model"], off.scores["ranking_model"]
    assert on_s.metrics["coverage"] > off_s.metrics["coverage"]  # on the validation split it never chose on
    gap, se = paired_gap(on_s.ndcg_per_user, off_s.ndcg_per_user)
    assert gap >= -2 * se, (gap, se)


def test_held_out_scores_do_not_depend_on_the_published_refit():
    users, movies, ratings = _synthetic(n_users=120, n_movies=60, per_user=15, seed=2)
    split = np.arange(len(users)) % 5 == 0
    train, val = (
        Ratings(users[~split], movies[~split], ratings[~split]),
        Ratings(users[split], movies[split], ratings[split]),
    )
    result = train_ranking_model(train, val, 120, 60, IALSParams(factors=4, iterations=6))
    held = HeldOut.from_ratings(val.users, val.movies, val.ratings, 120, 60)
    seen = UserItems.from_pairs(train.users, train.movies, 120, 60, train.ratings)
    ranked = result.evaluation_ranker(seen)(held.users, 10)
    from recsys_assets.core.ranking import ranking_metrics

    ndcg = ranking_metrics(ranked, held.users, held, 10).metrics["ndcg_at_10"]
    assert ndcg == pytest.approx(result.scores["ranking_model"].metrics["ndcg_at_10"])
    assert result.published_model.params.iterations == 6  # the warm-started refit keeps the chosen settings
    assert result.published_item_item is not None and result.published_seen.nnz == len(users)


def test_on_a_small_export_the_blend_is_chosen_on_three_inner_splits_pooled_user_by_user():
    """A few hundred users make one inner split a noisy judge: below FEW_USERS users the blend is chosen on
    three (seeds 0, 1, 2); a user's NDCG is their mean over the splits that score them, one row per user."""
    from recsys_assets.core.ranking import ranking_metrics
    from recsys_assets.core.ranking.choose import InnerFold, _score, choose_blend
    from recsys_assets.core.ranking.train import FEW_USERS, inner_split

    spec = SampleSpec(n_ratings=20_000, n_users=400, n_movies=600, seed=5)
    train, val, n_users, n_movies = _ratings(spec)
    params = IALSParams(factors=8, iterations=4)
    folds = []
    for seed in (0, 1):
        inner = inner_split(train, n_users, n_movies, seed=seed)
        model, items = fit_ials(inner.matrix, params), fit_item_item(inner.matrix)
        assert items is not None
        parts = Components(
            model.user_factors, model.item_factors, items.weights, inner.matrix.movie_counts(), items.rating_exponent
        )
        folds.append(InnerFold(parts, inner.matrix, inner.held))
    weights = Weights(0.75, 0.25, 0.0)
    by_user = {}
    for fold in folds:  # each split's own per-user NDCG, from the plain ranker
        top = blend_top_n(fold.parts, weights, fold.seen, fold.held.users, 10).movies
        for u, v in zip(fold.held.users, ranking_metrics(top, fold.held.users, fold.held, 10).ndcg_per_user):
            by_user.setdefault(int(u), []).append(v)
    pooled = _score(folds, [weights], 10, 5_000, 0)[0]
    assert len(pooled.ndcg_per_user) == len(by_user) == pooled.metrics["users_evaluated"]  # each user once
    assert any(len(v) == 2 for v in by_user.values())  # most users are scored in both splits
    expected = [np.mean(by_user[u]) for u in sorted(by_user)]
    np.testing.assert_allclose(pooled.ndcg_per_user, expected, atol=1e-9)
    one = {c["blend"]: c["inner_ndcg_at_10"] for c in choose_blend([folds[0]]).candidates}
    two = {c["blend"]: c["inner_ndcg_at_10"] for c in choose_blend([folds[1]]).candidates}
    assert one != two  # two draws of the same data disagree: the noise that pooling averages out

    assert n_users < FEW_USERS
    logged = {f: [] for f in (None, 1)}
    for f, lines in logged.items():
        candidates = CandidateSettings(factors=[8], regularization=[45.0], inner_folds=f)
        train_ranking_model(train, val, n_users, n_movies, params, candidates=candidates, log=lines.append)
    assert any("over 3): chose" in line for line in logged[None])
    assert any("over 1): chose" in line for line in logged[1])
    with pytest.raises(ValueError, match="inner_folds must be between 1 and 10"):
        CandidateSettings(inner_folds=0)


def test_a_reason_is_never_a_liked_movie_whose_weight_argues_against_the_pick():
    """EASE keeps negative weights: a liked movie with one to the pick (both ways) is never its reason, even
    when its factors are the closest and no pair of the block has a positive weight."""
    from recsys_assets.core.ranking.similarity import reasons

    a, b, pick = 0, 1, 2
    weights = UserItems.from_pairs([a, pick], [pick, a], 3, 3, np.array([-0.5, -0.5], np.float32))
    factors = np.array([[1.0, 0.1], [0.5, 1.0], [1.0, 0.0]], np.float32)  # a is the closer to the pick
    seen = UserItems.from_pairs([0, 0], [a, b], 1, 3, np.array([5.0, 4.5], np.float32))
    assert reasons(factors, weights, seen, np.array([0]), np.array([[pick]]))[0, 0] == b
    assert reasons(factors, None, seen, np.array([0]), np.array([[pick]]))[0, 0] == a  # the cosine alone
    # b barely like the pick (cosine 0.1 < MIN_COSINE) and a argued against: no reason rather than a weak one
    factors[b] = [0.1, 1.0]
    assert reasons(factors, weights, seen, np.array([0]), np.array([[pick]]))[0, 0] == -1


def _scores(ndcg_per_user):
    from recsys_assets.core.ranking.metrics import RankingScores

    per_user = np.asarray(ndcg_per_user, dtype=float)
    return RankingScores({"ndcg_at_10": float(per_user.mean())}, per_user)


@pytest.mark.parametrize(
    ("ials", "published"),
    [(0.30, "iALS 1"), (0.10, "most popular")],  # iALS alone holds: it; it loses too: most popular itself
)
def test_a_blend_that_loses_to_most_popular_is_replaced_by_the_best_that_does_not(ials, published):
    from recsys_assets.core.ranking.choose import BlendChoice
    from recsys_assets.core.ranking.evaluate import compare
    from recsys_assets.core.ranking.train import _fall_back

    rng = np.random.default_rng(0)
    popular = rng.uniform(0.2, 0.4, 500)
    scores = {
        "ranking_model": _scores(popular - 0.1),  # loses by 0.1 per user: far beyond noise
        "ials_alone": _scores(np.clip(popular + (ials - 0.3), 0, 1)),
        "most_popular": _scores(popular),
    }
    lost = compare(scores["ranking_model"], scores["most_popular"])
    assert lost.loses_beyond_noise
    said = []
    choice, comparison = _fall_back(
        BlendChoice(Weights(1.0, 0.5, 0.0)), scores, lost, k=10, noise_z=2.0, log=said.append
    )
    assert choice.weights.describe() == published and not comparison.loses_beyond_noise
    assert scores["ranking_model"] is scores["ials_alone" if published == "iALS 1" else "most_popular"]
    assert "lost on the validation split" in choice.fallback and f"publishing {published} instead" in said[0]
