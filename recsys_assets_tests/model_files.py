"""Small model files for the Recommender and CLI tests: a hand-set rating model, and a rating model with
a ranking model fitted beside it."""

import numpy as np
import torch

from recsys_assets.core.ranking import seen_matrix
from recsys_assets.core.rating.model import BiasedMF
from recsys_assets.core.rating.model_file import save_model_file
from recsys_assets.core.rating.report import ModelReport


def hand_set_model_file(tmp_path):
    """Three users, four movies, weights set by hand (the predictions are computed in the tests)."""
    torch.manual_seed(0)
    model = BiasedMF(3, 4, 2, global_mean=3.0, sparse=False)
    with torch.no_grad():
        model.user_bias.weight[:, 0] = torch.tensor([0.5, -0.5, 0.0])
        model.movie_bias.weight[:, 0] = torch.tensor([1.0, 0.0, -1.0, 0.2])
        model.user_factors.weight[:] = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
        model.movie_factors.weight[:] = torch.tensor([[2.0, 0.0], [0.0, 0.5], [0.0, 0.0], [0.3, 0.3]])
    users, movies = np.array([0, 0, 1, 2]), np.array([0, 1, 2, 3])
    indptr, indices = seen_matrix(users, movies, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    report = ModelReport(
        metrics={"val_rmse": 1.0},
        weights_finite=True,
        seen_indptr=indptr,
        seen_indices=indices,
        movie_counts=np.array([5, 1, 3, 9]),
    )
    return save_model_file(
        tmp_path / "recommendation_model.pth",
        report,
        model_state=model.state_dict(),
        optimizer_state=opt.state_dict(),
        user_ids=np.array([10, 20, 30]),
        movie_ids=np.array([100, 200, 300, 400]),
        config={"rating_min": 0.5, "rating_max": 5.0},
        history=[{"epoch": 1, "train_loss": 1.0, "val_loss": 1.1}],
    )


def ranked_pair(tmp_path):
    """A rating model and a ranking model fitted on the same small synthetic ratings."""
    from recsys_assets.core.ids import IdMapping
    from recsys_assets.core.ranking import IALSParams, UserItems, fit_ials
    from recsys_assets.core.ranking.model import RankingModel

    rng = np.random.default_rng(0)
    n_users, n_movies = 60, 30
    users, movies = [], []
    for u in range(n_users):
        group = np.arange(15) if u % 2 == 0 else np.arange(15, 30)
        picks = rng.choice(group, 10, replace=False)
        users += [u] * 10
        movies += picks.tolist()
    users, movies = np.array(users), np.array(movies)
    ratings = rng.choice([3.0, 4.0, 5.0], len(users)).astype(np.float32)
    user_ids, movie_ids = np.arange(n_users) + 1, np.arange(n_movies) * 10 + 100
    torch.manual_seed(0)
    model = BiasedMF(n_users, n_movies, 4, global_mean=3.5, sparse=False)
    indptr, indices = seen_matrix(users, movies, n_users)
    report = ModelReport(
        metrics={"ndcg_at_10": 0.01},
        weights_finite=True,
        seen_indptr=indptr,
        seen_indices=indices,
        movie_counts=np.bincount(movies, minlength=n_movies),
    )
    rating_file = save_model_file(
        tmp_path / "recommendation_model.pth",
        report,
        model_state=model.state_dict(),
        optimizer_state=torch.optim.SGD(model.parameters(), lr=0.1).state_dict(),
        user_ids=user_ids,
        movie_ids=movie_ids,
        config={},
        history=[],
    )
    matrix = UserItems.from_pairs(users, movies, n_users, n_movies, ratings)
    params = IALSParams(factors=4, regularization=1.0, iterations=10)
    fitted = fit_ials(matrix, params)
    RankingModel(
        fitted.user_factors,
        fitted.item_factors,
        IdMapping(user_ids),
        IdMapping(movie_ids),
        matrix,
        params,
        metrics={"val_ndcg_at_10": 0.2},
    ).save(tmp_path / "ranking_model.pth")
    return rating_file, matrix, user_ids, movie_ids
