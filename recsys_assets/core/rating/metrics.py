"""Rating-prediction metrics and the baselines a model must beat."""

import numpy as np

from recsys_assets.core import rating_scale


def rmse(predicted, actual) -> float:
    predicted, actual = np.asarray(predicted, np.float64), np.asarray(actual, np.float64)
    return float(np.sqrt(np.mean((predicted - actual) ** 2)))


def mae(predicted, actual) -> float:
    predicted, actual = np.asarray(predicted, np.float64), np.asarray(actual, np.float64)
    return float(np.mean(np.abs(predicted - actual)))


def fit_biases(
    users: np.ndarray,
    movies: np.ndarray,
    ratings: np.ndarray,
    n_users: int,
    n_movies: int,
    *,
    reg_user: float = 15.0,
    reg_movie: float = 10.0,
    iterations: int = 10,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Regularized user and movie biases by alternating least squares (Koren's baseline)."""
    mu = float(np.mean(ratings))
    bu = np.zeros(n_users)
    bi = np.zeros(n_movies)
    n_u = np.bincount(users, minlength=n_users)
    n_i = np.bincount(movies, minlength=n_movies)
    for _ in range(iterations):
        bi = np.bincount(movies, ratings - mu - bu[users], minlength=n_movies) / (reg_movie + n_i)
        bu = np.bincount(users, ratings - mu - bi[movies], minlength=n_users) / (reg_user + n_u)
    return mu, bu, bi


Triple = tuple[np.ndarray, np.ndarray, np.ndarray]  # (user indices, movie indices, ratings)


def baselines(
    train: Triple,
    val: Triple,
    *,
    n_users: int,
    n_movies: int,
    rating_range: tuple[float, float] | None = None,  # None: the rating scale (core/rating_scale.py)
) -> dict[str, float]:
    """Validation RMSE of the global mean and of the bias-only model on the same split."""
    train_u, train_m, train_r = train
    val_u, val_m, val_r = val
    mu = float(np.mean(train_r))
    mu_b, bu, bi = fit_biases(train_u, train_m, train_r, n_users, n_movies)
    bias_pred = np.clip(mu_b + bu[val_u] + bi[val_m], *(rating_range or rating_scale.bounds()))
    return {
        "global_mean_rmse": rmse(np.full(len(val_r), mu), val_r),
        "bias_only_rmse": rmse(bias_pred, val_r),
    }
