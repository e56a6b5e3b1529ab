"""``Recommender``: predictions and top-k recommendations from a saved model file.

    >>> from recsys_assets import Recommender
    >>> rec = Recommender.load("data/recommendation_model.pth")
    >>> rec.predict([1, 1], [31, 1029])          # raw user and movie ids
    >>> rec.recommend(1, k=10)                   # top 10 movies user 1 has not rated

Predictions are clamped to the rating scale.  An unknown user or movie falls
back to the known terms (global mean and the other side's bias); an unknown
user's recommendations are the most popular movies.
"""

import os

import numpy as np
import pandas as pd

from recsys_assets.core.artifact import load_model_file
from recsys_assets.core.dataset import IdMapping


class Recommender:
    """A trained biased-MF model held as numpy arrays, addressed by raw ids."""

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
        rating_range: tuple[float, float] = (0.5, 5.0),
        seen_indptr: np.ndarray | None = None,
        seen_indices: np.ndarray | None = None,
        movie_counts: np.ndarray | None = None,
        info: dict | None = None,
    ):
        self.global_mean = float(global_mean)
        self.user_bias, self.movie_bias = user_bias, movie_bias
        self.user_factors, self.movie_factors = user_factors, movie_factors
        self.users, self.movies = users, movies
        self.rating_range = rating_range
        self.seen_indptr, self.seen_indices = seen_indptr, seen_indices
        self.movie_counts = movie_counts
        self.info = info or {}

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Recommender":
        payload = load_model_file(path)
        state = payload["model_state_dict"]
        config = payload.get("config", {})
        return cls(
            global_mean=float(state["global_mean"]),
            user_bias=state["user_bias.weight"].numpy()[:, 0].astype(np.float64),
            movie_bias=state["movie_bias.weight"].numpy()[:, 0].astype(np.float64),
            user_factors=state["user_factors.weight"].numpy(),
            movie_factors=state["movie_factors.weight"].numpy(),
            users=IdMapping.from_dict(payload["user_mapping"]),
            movies=IdMapping.from_dict(payload["movie_mapping"]),
            rating_range=(config.get("rating_min", 0.5), config.get("rating_max", 5.0)),
            seen_indptr=payload["seen_indptr"].numpy() if "seen_indptr" in payload else None,
            seen_indices=payload["seen_indices"].numpy() if "seen_indices" in payload else None,
            movie_counts=payload["movie_counts"].numpy() if "movie_counts" in payload else None,
            info={"config": config, "metrics": payload.get("metrics", {}), "history": payload.get("history", [])},
        )

    def predict(self, user_ids, movie_ids) -> np.ndarray:
        """Predicted ratings for pairs of raw ids, clamped to the rating scale."""
        user_ids = np.atleast_1d(np.asarray(user_ids, dtype=np.int64))
        movie_ids = np.atleast_1d(np.asarray(movie_ids, dtype=np.int64))
        if user_ids.shape != movie_ids.shape:
            raise ValueError(f"user_ids and movie_ids differ in shape: {user_ids.shape} vs {movie_ids.shape}")
        known_u, known_m = self.users.known(user_ids), self.movies.known(movie_ids)
        u = self.users.encode(user_ids, unknown=0)
        m = self.movies.encode(movie_ids, unknown=0)
        both = known_u & known_m
        dot = np.einsum("ij,ij->i", self.user_factors[u], self.movie_factors[m]).astype(np.float64)
        pred = (
            self.global_mean
            + np.where(known_u, self.user_bias[u], 0.0)
            + np.where(known_m, self.movie_bias[m], 0.0)
            + np.where(both, dot, 0.0)
        )
        return np.clip(pred, *self.rating_range)

    def predict_frame(self, user_ids, movie_ids) -> pd.DataFrame:
        """Like :meth:`predict`, with flags saying which ids the model did not know."""
        user_ids = np.atleast_1d(np.asarray(user_ids, dtype=np.int64))
        movie_ids = np.atleast_1d(np.asarray(movie_ids, dtype=np.int64))
        return pd.DataFrame({
            "user_id": user_ids,
            "movie_id": movie_ids,
            "prediction": self.predict(user_ids, movie_ids),
            "unknown_user": ~self.users.known(user_ids),
            "unknown_movie": ~self.movies.known(movie_ids),
        })

    def recommend_many(self, user_ids, k: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """Top-``k`` for several users: ``user_id, rank, movie_id, score, fallback``."""
        frames = []
        for user_id in np.atleast_1d(np.asarray(user_ids, dtype=np.int64)).tolist():
            frame = self.recommend(user_id, k=k, exclude_seen=exclude_seen)
            frames.append(frame.assign(user_id=user_id, fallback=frame.attrs["fallback"]))
        columns = ["user_id", "rank", "movie_id", "score", "fallback"]
        return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)

    def similar_movies(self, movie_id: int, k: int = 10) -> pd.DataFrame:
        """The ``k`` movies whose embeddings are closest in cosine similarity: ``rank, movie_id, similarity``."""
        if not self.movies.known([movie_id])[0]:
            raise KeyError(f"movie {movie_id} is not known to the model")
        m = int(self.movies.encode([movie_id])[0])
        norms = np.linalg.norm(self.movie_factors, axis=1)
        sims = (self.movie_factors @ self.movie_factors[m]) / np.maximum(norms * norms[m], 1e-12)
        sims[m] = -np.inf
        k = min(k, len(sims) - 1)
        top = np.argpartition(-sims, k - 1)[:k] if k > 0 else np.empty(0, dtype=np.int64)
        top = top[np.argsort(-sims[top], kind="stable")]
        return pd.DataFrame({"rank": np.arange(1, len(top) + 1), "movie_id": self.movies.ids[top], "similarity": sims[top]})

    def seen(self, user_index: int) -> np.ndarray:
        if self.seen_indptr is None:
            return np.empty(0, dtype=np.int64)
        return self.seen_indices[self.seen_indptr[user_index] : self.seen_indptr[user_index + 1]]

    def recommend(self, user_id: int, k: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """Top-``k`` movies for a raw user id, best first: ``rank, movie_id, score``.

        Movies the user has rated are excluded.  An unknown user gets the most
        popular movies, and the frame's ``attrs["fallback"]`` says so.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        known = bool(self.users.known([user_id])[0])
        if known:
            u = int(self.users.encode([user_id])[0])
            scores = self.global_mean + self.user_bias[u] + self.movie_bias + self.movie_factors @ self.user_factors[u]
            if exclude_seen:
                scores[self.seen(u)] = -np.inf
        else:
            counts = self.movie_counts if self.movie_counts is not None else np.zeros(len(self.movies))
            scores = counts.astype(np.float64)
        k = min(k, int(np.isfinite(scores).sum()))
        top = np.argpartition(-scores, k - 1)[:k] if k else np.empty(0, dtype=np.int64)
        top = top[np.argsort(-scores[top], kind="stable")]
        if known:
            shown = np.clip(scores[top], *self.rating_range)
        else:
            shown = np.clip(self.global_mean + self.movie_bias[top], *self.rating_range)
        frame = pd.DataFrame({"rank": np.arange(1, len(top) + 1), "movie_id": self.movies.ids[top], "score": shown})
        frame.attrs["fallback"] = None if known else "popularity"
        return frame
