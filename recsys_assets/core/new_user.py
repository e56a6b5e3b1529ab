"""Recommendations for someone the models never saw, from a few ratings (fold-in, no retraining).

A part of :class:`recommender.Recommender` (its base class), kept apart so each module stays short.
"""

import numpy as np
import pandas as pd

from recsys_assets.core.ids import IdMapping
from recsys_assets.core.ranking.choose import kept
from recsys_assets.core.ranking.interactions import UserItems
from recsys_assets.core.ranking.model import RankingModel


class NewUser:
    """``recommend_for_ratings`` and the new-user rating predictions; the attributes are ``Recommender``'s."""

    ranker: "RankingModel | None"
    movies: IdMapping
    rating_range: tuple[float, float]
    coherent: bool
    coherent_margin: float
    support: bool
    exposure: bool
    average_user: np.ndarray
    global_mean: float
    movie_bias: np.ndarray
    movie_factors: np.ndarray

    def _listable(self, result) -> tuple[np.ndarray, np.ndarray]:
        """Which movies of ranked pools the ranking model lets into a list, and which are within their exposure
        limit (``Recommender``'s)."""
        raise NotImplementedError

    def popularity(self) -> np.ndarray:
        raise NotImplementedError

    def new_user_ratings(self, movies: np.ndarray, delta=0.0, clip: bool = True) -> np.ndarray:
        raise NotImplementedError

    def fold_in_ratings(self, rated_ids, values, movie_ids, reg: float = 5.0, clip: bool = True) -> np.ndarray:
        raise NotImplementedError

    @property
    def _ranking(self) -> "RankingModel":
        raise NotImplementedError

    def recommend_for_ratings(self, ratings: dict, k: int = 10, by: str = "ranking") -> pd.DataFrame:
        """Top-``k`` for someone the model never saw, from their ratings ``{movie_id: rating}``.

        ``by="ranking"``: the ranking model folds them in (one least-squares solve against the
        fixed movie factors; no retraining); ``by="rating"``: ordered by the rating model's
        predicted rating for this person (a ridge fit of their ratings). The rated movies are
        never recommended back. Movies the model does not know are ignored (``attrs["ignored"]``
        lists them). Without a ranking model, or when no rated movie is known to it, ``by="ranking"``
        returns the most popular unrated movies and ``attrs["fallback"]`` says so.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if by not in ("ranking", "rating"):
            raise ValueError(f"by must be 'ranking' or 'rating', got {by!r}")
        movie_ids = np.array(list(ratings.keys()), dtype=np.int64)
        values = np.array([float(v) for v in ratings.values()], dtype=np.float64)
        if not np.isfinite(values).all():
            raise ValueError("ratings must be finite numbers")
        lo, hi = self.rating_range
        if ((values < lo) | (values > hi)).any():
            raise ValueError(f"ratings must lie within {lo}-{hi}")
        if by == "rating":
            return self._folded_by_rating(movie_ids, values, k)
        r = self.ranker
        known = r.movies.known(movie_ids) if r is not None else np.zeros(len(movie_ids), dtype=bool)
        if not known.any():
            return self._popular_for(movie_ids, k, ignored=movie_ids.tolist())
        return self._folded_by_ranking(movie_ids, values, k, ignored=movie_ids[~known].tolist())

    def _popular_for(self, movie_ids: np.ndarray, k: int, ignored: list) -> pd.DataFrame:
        counts = self.popularity()
        counts[self.movies.encode(movie_ids[self.movies.known(movie_ids)])] = -np.inf
        order = np.argsort(-counts, kind="stable")[: min(k, int(np.isfinite(counts).sum()))]
        frame = pd.DataFrame(
            {
                "rank": np.arange(1, len(order) + 1),
                "movie_id": self.movies.ids[order],
                "score": counts[order],
                "predicted_rating": self.new_user_ratings(order),
                "because_movie_id": -1,
            }
        )
        frame.attrs.update(fallback="popularity", ignored=ignored, by="popularity")
        return frame

    def _folded_by_rating(self, movie_ids: np.ndarray, values: np.ndarray, k: int) -> pd.DataFrame:
        known = self.movies.known(movie_ids)
        predicted = self.fold_in_ratings(movie_ids, values, self.movies.ids, clip=False)
        predicted[self.movies.encode(movie_ids[known])] = -np.inf
        k = min(k, int(np.isfinite(predicted).sum()))
        top = np.argsort(-predicted, kind="stable")[:k]
        frame = pd.DataFrame(
            {
                "rank": np.arange(1, len(top) + 1),
                "movie_id": self.movies.ids[top],
                "score": predicted[top],
                "predicted_rating": np.clip(predicted[top], *self.rating_range),
                "because_movie_id": -1,
            }
        )
        frame.attrs.update(fallback=None, ignored=movie_ids[~known].tolist(), by="rating")
        return frame

    def _folded_by_ranking(self, movie_ids: np.ndarray, values: np.ndarray, k: int, ignored: list) -> pd.DataFrame:
        r = self._ranking
        known = r.movies.known(movie_ids)
        m = r.movies.encode(movie_ids[known])
        one = UserItems.from_pairs(np.zeros(len(m), dtype=np.int64), m, 1, len(r.movies), values[known])
        result = r.ranked_pool(np.array([0]), k, seen=one)
        finite = np.isfinite(result.scores[0])  # ranked first: the rest are rated or past the catalogue
        top = result.movies[0][finite]
        # leave out thin evidence, movies past their exposure limit and movies predicted clearly below this
        # person's mean; the order stays
        passes, within = (mask[0][finite] for mask in self._listable(result))
        if self.coherent:
            predicted = self.fold_in_ratings(movie_ids, values, r.movies.ids[top])
            passes &= predicted >= values.mean() - self.coherent_margin - 1e-6
        top = top[kept(passes, k, then=within)]
        because = r.because(np.array([0]), top[None, :], seen=one)[0]
        top_ids = r.movies.ids[top]
        frame = pd.DataFrame(
            {
                "rank": np.arange(1, len(top) + 1),
                "movie_id": top_ids,
                "score": self._scores_of(result, top),
                "predicted_rating": self.fold_in_ratings(movie_ids, values, top_ids),
                "because_movie_id": np.where(because >= 0, r.movies.ids[np.maximum(because, 0)], -1),
            }
        )
        frame.attrs.update(fallback=None, ignored=ignored, by="ranking")
        return frame

    @staticmethod
    def _scores_of(result, movies: np.ndarray) -> np.ndarray:
        """The ranking scores of ``movies`` (a subset of the first row of ``result``)."""
        score = dict(zip(result.movies[0].tolist(), result.scores[0].tolist(), strict=True))
        return np.array([score[int(m)] for m in movies], dtype=np.float64)
