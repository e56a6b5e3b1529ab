"""``RatingPredictor``: the rating model in numpy form (weights, id mappings), predicting stars for raw ids.

What the serving ``Recommender`` is built on and what the release scores a candidate and the published
model with (``core/release/evidence.py``), so neither the release nor the model needs the serving layer.
"""

import numpy as np
import pandas as pd

from recsys_assets.core import rating_scale
from recsys_assets.core.ids import IdMapping
from recsys_assets.core.ranking.interactions import UserItems
from recsys_assets.core.weights_file import as_array


class RatingPredictor:
    """Biased matrix factorization as numpy arrays over raw ids: ``predict(user_ids, movie_ids)``."""

    def __init__(
        self,
        *,
        global_mean: float,
        user_bias: np.ndarray,
        movie_bias: np.ndarray,
        user_factors: np.ndarray,
        movie_factors: np.ndarray,
        users: IdMapping,
        movies: IdMapping,
        rating_range: tuple[float, float] | None = None,  # None: the rating scale (core/rating_scale.py)
        seen: UserItems | None = None,
        movie_counts: np.ndarray | None = None,
        info: dict | None = None,
    ):
        self.global_mean = float(global_mean)
        self.user_bias, self.movie_bias = user_bias, movie_bias
        self.user_factors, self.movie_factors = user_factors, movie_factors
        # (mean user factors..., mean user bias): how a user the model never saw is rated
        self.average_user = np.append(user_factors.mean(0), user_bias.mean()).astype(np.float64)
        self.users, self.movies = users, movies
        self.rating_range = rating_range or rating_scale.bounds()
        self.seen_matrix = seen
        self.movie_counts = movie_counts
        self.info = info or {}

    @classmethod
    def from_state(cls, state: dict, users: IdMapping, movies: IdMapping, **extra) -> "RatingPredictor":
        """A rating model from a ``BiasedMF`` state dict (tensors) and its id mappings; ``extra``: the
        constructor's other keywords (``rating_range``, ``seen``, ``info``, ``ranker`` ...). Tensors may be
        PyTorch's or numpy arrays (``core/weights_file.py``)."""
        array = lambda key: np.asarray(as_array(state[key]))  # noqa: E731
        return cls(
            global_mean=float(array("global_mean")),
            user_bias=array("user_bias.weight")[:, 0].astype(np.float64),
            movie_bias=array("movie_bias.weight")[:, 0].astype(np.float64),
            user_factors=array("user_factors.weight"),
            movie_factors=array("movie_factors.weight"),
            users=users,
            movies=movies,
            **extra,
        )

    def _raw_predict(self, user_ids, movie_ids) -> np.ndarray:
        user_ids = np.atleast_1d(np.asarray(user_ids, dtype=np.int64))
        movie_ids = np.atleast_1d(np.asarray(movie_ids, dtype=np.int64))
        if user_ids.shape != movie_ids.shape:
            raise ValueError(f"user_ids and movie_ids differ in shape: {user_ids.shape} vs {movie_ids.shape}")
        known_u, known_m = self.users.known(user_ids), self.movies.known(movie_ids)
        u = self.users.encode(user_ids, unknown=0)
        m = self.movies.encode(movie_ids, unknown=0)
        average = self.average_user  # an unknown user is rated as the average trained user
        factors = np.where(known_u[:, None], self.user_factors[u], average[:-1])
        dot = np.einsum("ij,ij->i", factors, self.movie_factors[m]).astype(np.float64)
        bias = np.where(known_u, self.user_bias[u], average[-1])
        return self.global_mean + bias + np.where(known_m, self.movie_bias[m] + dot, 0.0)

    def predict(self, user_ids, movie_ids) -> np.ndarray:
        """Predicted ratings for raw id pairs, clamped; an unknown user is the average user, an unknown movie adds 0."""
        return np.clip(self._raw_predict(user_ids, movie_ids), *self.rating_range)

    def predict_frame(self, user_ids, movie_ids) -> pd.DataFrame:
        """Like :meth:`predict`, with flags saying which ids the model did not know."""
        user_ids = np.atleast_1d(np.asarray(user_ids, dtype=np.int64))
        movie_ids = np.atleast_1d(np.asarray(movie_ids, dtype=np.int64))
        return pd.DataFrame(
            {
                "user_id": user_ids,
                "movie_id": movie_ids,
                "prediction": self.predict(user_ids, movie_ids),
                "unknown_user": ~self.users.known(user_ids),
                "unknown_movie": ~self.movies.known(movie_ids),
            }
        )

    def new_user_ratings(self, movies: np.ndarray, delta=0.0, clip: bool = True) -> np.ndarray:
        """Ratings of movie indices ``movies`` (-1: unknown) for the average user moved by ``delta``."""
        w = self.average_user + delta
        i = np.maximum(movies, 0)
        pred = self.global_mean + w[-1] + np.where(movies >= 0, self.movie_bias[i] + self.movie_factors[i] @ w[:-1], 0)
        return np.clip(pred, *self.rating_range) if clip else pred

    def fold_in_ratings(
        self, rated_ids: np.ndarray, values: np.ndarray, movie_ids: np.ndarray, reg: float = 5.0, clip: bool = True
    ):
        """Predicted ratings of ``movie_ids`` for a new user: ridge regression of their ratings on the
        rating model's movie factors (user bias and factors; ``reg`` shrinks both to the average user's)."""
        m = self.movies.encode(rated_ids[self.movies.known(rated_ids)])
        X = np.hstack([self.movie_factors[m].astype(np.float64), np.ones((len(m), 1))])
        target = values[self.movies.known(rated_ids)] - self.new_user_ratings(m, clip=False)
        delta = np.linalg.solve(X.T @ X + reg * np.eye(X.shape[1]), X.T @ target) if len(m) else np.zeros(X.shape[1])
        return self.new_user_ratings(self.movies.encode(movie_ids, unknown=-1), delta, clip=clip)
