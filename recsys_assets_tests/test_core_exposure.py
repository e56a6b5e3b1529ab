"""The exposure limit: no movie in more than a share of the lists, left out (never moved) where it ranks lowest."""

import numpy as np
import pytest

from recsys_assets import Recommender
from recsys_assets.core.model_errors import ModelFileError
from recsys_assets.core.ranking.choose import kept
from recsys_assets.core.ranking.exposure import admitted, claims, exposure_limits
from recsys_assets.core.ranking.model import RankingModel

from .model_files import ranked_pair


def _pools(n_users=200, n_movies=400, pool=40, seed=0):
    """Ranked pools where a few movies lead everyone's list: movie m scores about 5 - m / 40 for every user."""
    rng = np.random.default_rng(seed)
    scores = 5 - np.arange(n_movies) / 40 + rng.normal(0, 1.0, (n_users, n_movies))
    movies = np.argsort(-scores, axis=1)[:, :pool]
    return movies, np.take_along_axis(scores, movies, axis=1)


@pytest.mark.parametrize("share", [0.3, 0.2, 0.1])
def test_no_movie_passes_its_share_and_it_stays_where_it_ranks_highest(share):
    movies, scores = _pools()
    rows, cap = np.arange(len(movies))[:, None], int(share * len(movies))
    passes = np.ones(movies.shape, dtype=bool)
    before = movies[rows, kept(passes, 10)]
    assert np.bincount(before.ravel(), minlength=400).max() > cap  # without the limit some movie passes it
    limits = exposure_limits(movies, scores, passes, 400, share, 10)
    ok = admitted(movies, scores, limits)
    listed = kept(ok, 10)
    within = ok[rows, listed]
    assert within.mean() > 0.95  # the pools were deep enough: a list is rarely short of admitted movies
    assert np.bincount(movies[rows, listed][within], minlength=400).max() <= cap
    assert (np.diff(listed, axis=1) > 0).all()  # left out, never moved: the kept positions stay in order
    strength = claims(scores)
    for m in np.flatnonzero(np.isfinite(limits)):  # it stays with the users who rank it highest
        at = movies == m
        listing = ((movies[rows, listed] == m) & within).any(axis=1)  # not as a fill-in
        left_out = at & ~ok
        assert left_out.any() and listing.any()
        assert strength[left_out].max() < strength[at & listing[:, None]].min()


def test_a_share_of_one_limits_nothing_and_identical_lists_are_not_split():
    movies, scores = _pools()
    passes = np.ones(movies.shape, dtype=bool)
    assert np.isneginf(exposure_limits(movies, scores, passes, 400, 1.0, 10)).all()
    same = np.tile(np.arange(15), (100, 1))  # most popular: every user the same list and the same scores
    limits = exposure_limits(same, np.tile(np.linspace(2, 1, 15), (100, 1)), passes[:100, :15], 50, 0.1, 10)
    assert admitted(same, np.tile(np.linspace(2, 1, 15), (100, 1)), limits).all()
    with pytest.raises(ValueError, match="exposure share"):
        exposure_limits(movies, scores, passes, 400, 0.0, 10)


def test_one_users_list_is_the_batchs_and_the_limit_travels_in_the_file(tmp_path):
    path, _, user_ids, _ = ranked_pair(tmp_path)
    rec = Recommender.load(path)
    rec.coherent = False
    unlimited = rec.recommend_many(user_ids, k=5)
    rec.ranker = rec.ranker.with_exposure_limit(0.2, k=5)
    frame = rec.recommend_many(user_ids, k=5)
    cap = int(0.2 * len(user_ids))
    assert unlimited["movie_id"].value_counts().max() > cap >= frame["movie_id"].value_counts().max()
    for u in user_ids[:6]:  # one user at a time gets the batch's list
        assert rec.recommend(int(u), k=5)["movie_id"].tolist() == frame[frame["user_id"] == u]["movie_id"].tolist()
    ranking_path = tmp_path / "ranking_model.pth"
    rec.ranker.save(ranking_path)
    for reader in (RankingModel.read, RankingModel.load):
        back = reader(ranking_path)
        assert back.max_exposure == 0.2 and np.array_equal(back.exposure, rec.ranker.exposure)
    again = Recommender.load(path)
    again.coherent = False
    assert again.recommend_many(user_ids, k=5)["movie_id"].tolist() == frame["movie_id"].tolist()
    import torch

    payload = torch.load(ranking_path, weights_only=True)
    payload["exposure_limits"] = payload["exposure_limits"] * float("nan")
    torch.save(payload, ranking_path)
    with pytest.raises(ModelFileError, match="exposure limits are not finite"):
        RankingModel.read(ranking_path)
