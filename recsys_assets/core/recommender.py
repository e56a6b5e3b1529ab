"""``Recommender``: predictions and top-k recommendations from the saved model files.

    >>> from recsys_assets import Recommender
    >>> rec = Recommender.load("data/recommendation_model.pth")  # + data/ranking_model.pth beside it
    >>> rec.recommend(1, k=10)                        # top 10 unseen movies, ranked by the ranking model
    >>> rec.recommend(1, k=10, by="rating")           # ordered by predicted rating instead
    >>> rec.recommend_for_ratings({318: 5, 296: 4.5}) # someone the model never saw (fold-in, no retraining)
    >>> rec.predict([1, 1], [31, 1029])               # predicted ratings for raw user and movie ids

Two models, one interface. The rating model (``recommendation_model.pth``,
biased matrix factorization) predicts stars; the ranking model
(``ranking_model.pth``, iALS) decides what to recommend, because a model trained
on squared rating error ranks worse than a most-popular list (README,
"Recommendations"). Every recommendation row carries both: the ranking score,
the predicted rating, and the rated movie that contributes most to the score.

Predicted ratings are clamped to the rating scale for display; ordering by
rating uses the unclamped value, so the top of a list never ties at 5.00. An unknown user
gets the most popular movies (``attrs["fallback"]`` says so), rated as the average user.

Loading reads the files without PyTorch (``core/weights_file.py``: a restricted reader of the ``torch.save``
archives, the same checks), and the read path's arithmetic is numpy, so ``recsys recommend`` starts in about a
second; ``reader="torch"`` loads them with ``torch.load(weights_only=True)`` instead (the same model).
"""

import os
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_assets.core.artifact_store import ArtifactStore
from recsys_assets.core.ids import IdMapping
from recsys_assets.core.new_user import NewUser
from recsys_assets.core.ranking.choose import kept
from recsys_assets.core.ranking.exposure import admitted
from recsys_assets.core.ranking.interactions import UserItems
from recsys_assets.core.ranking.model import RankingModel
from recsys_assets.core.ranking.similarity import GENRE_WEIGHT, genre_likeness, genre_matrix, neighbours
from recsys_assets.core.ranking.topn import top_n
from recsys_assets.core.rating.model_file import (
    ModelFileError,
    check_same_data,
    load_model_file,
    read_model_file,
    serving_fields,
)
from recsys_assets.core.rating.predictor import RatingPredictor
from recsys_assets.core.release import live
from recsys_assets.core.release.candidate import RANKING_FILE, RATING_FILE

COLUMNS = ["rank", "movie_id", "score", "predicted_rating", "because_movie_id"]
# stars below a user's mean rating at which a ranked movie is left out of the list (while enough remain)
COHERENT_MARGIN = 0.5
# each reader: (rating model file -> payload, ranking model file -> RankingModel)
READERS = {"numpy": (read_model_file, RankingModel.read), "torch": (load_model_file, RankingModel.load)}


def user_means(seen: UserItems, rows: np.ndarray) -> np.ndarray:
    """Each row's mean rating (``seen`` with ratings); -inf for a row without ratings (no filter)."""
    rows = np.asarray(rows, dtype=np.int64)
    if seen.values is None:
        return np.full(len(rows), -np.inf)
    sums = np.add.reduceat(np.append(seen.values, 0.0).astype(np.float64), seen.indptr[:-1])
    counts = seen.counts()
    sums = np.where(counts > 0, sums, 0.0)
    return np.where(counts[rows] > 0, sums[rows] / np.maximum(counts[rows], 1), -np.inf)


class Recommender(RatingPredictor, NewUser):
    """The rating model (numpy arrays, raw ids) and, when present, the ranking model."""

    def __init__(self, *, ranker: RankingModel | None = None, **weights):
        """``weights``: :class:`RatingPredictor`'s keywords (biases, factors, mappings, range, seen, info)."""
        super().__init__(**weights)
        self.ranker = ranker
        self.heldback = self.info.get("heldback")  # the held-back evaluation set (core/heldback.py), or None
        self.coherent = True  # leave out movies predicted clearly below the user's mean rating (see _coherent)
        self.coherent_margin = COHERENT_MARGIN  # how far below the mean (stars) is clearly below
        self.support = True  # leave out movies with fewer ratings than the ranking model's min_ratings
        self.exposure = True  # keep each movie within the ranking model's exposure limit (core/ranking/exposure.py)
        self._genre_cache: tuple | None = None  # (genres, mapping, genre_matrix) of the last similar_movies call

    @classmethod
    def from_store(cls, store, name: str, ranking_store=None, ranking_name: str | None = None) -> "Recommender":
        """Load the rating model ``name`` from an ``ArtifactStore`` (a folder or an fsspec URL) with the
        ranking model: ``ranking_name`` in ``ranking_store`` (default: ``store``), which must exist, or
        else ``ranking_model.pth`` in ``store`` when it exists."""
        if not live.exists(store, name):
            raise ModelFileError(f"model file not found: {store.url(name)}; materialize recommendation_model first")
        if ranking_name is None:
            ranking_store, ranking_name = store, RANKING_FILE
            if not live.exists(store, RANKING_FILE):
                with store.read(live.resolve(store, name)) as path:
                    return cls.load(path, find_ranking=False)
        ranking_store = ranking_store or store
        name, ranking_name = live.resolve(store, name), live.resolve(ranking_store, ranking_name)
        if not ranking_store.exists(ranking_name):
            raise ModelFileError(f"ranking model file not found: {ranking_store.url(ranking_name)}")
        with store.read(name) as path, ranking_store.read(ranking_name) as ranking_path:
            return cls.load(path, ranking_path=ranking_path)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        ranking_path: str | os.PathLike | None = None,
        *,
        find_ranking: bool = True,
        reader: str = "numpy",
    ) -> "Recommender":
        """Load the rating model file and the ranking model file (default: ``ranking_model.pth`` beside it,
        when it exists and ``find_ranking``; pass ``ranking_path`` to name another, which must then exist).
        ``path`` may be an fsspec URL (``s3://bucket/recsys/recommendation_model.pth``). ``reader``: ``"numpy"``
        (no PyTorch import) or ``"torch"`` (``torch.load``), see :data:`READERS`; a URL or the live pair
        resolved through ``live.json`` is read with the numpy reader."""
        read_rating, read_ranking = READERS[reader]
        if "://" in str(path):  # an fsspec URL: read through the artifact store
            store_url, name = str(path).rsplit("/", 1)
            store = ArtifactStore(store_url)
            if ranking_path is None and not find_ranking:
                with store.read(name) as local:
                    return cls.load(local, find_ranking=False)
            ranking_dir, ranking_name = os.path.split(str(ranking_path)) if ranking_path else ("", None)
            ranking_store = ArtifactStore(ranking_dir or ".") if ranking_name else None
            return cls.from_store(store, name, ranking_store, ranking_name)
        if (
            ranking_path is None
            and find_ranking
            and Path(path).name == RATING_FILE
            and live.read(ArtifactStore(Path(path).parent))
        ):
            return cls.from_store(ArtifactStore(Path(path).parent), RATING_FILE)  # the live pair, through the pointer
        payload = read_rating(path)
        if ranking_path is not None:
            ranker = read_ranking(ranking_path)
        else:
            sibling = Path(path).with_name(RANKING_FILE)
            ranker = read_ranking(sibling) if find_ranking and sibling.exists() else None
        check_same_data(payload, ranker.info if ranker is not None else None, path)
        users, movies = IdMapping.from_dict(payload["user_mapping"]), IdMapping.from_dict(payload["movie_mapping"])
        return cls.from_state(payload["model_state_dict"], users, movies, **serving_fields(payload), ranker=ranker)

    # ---- recommendations ----------------------------------------------------------------------

    def _check_by(self, by: str) -> str:
        if by not in ("ranking", "rating"):
            raise ValueError(f"by must be 'ranking' or 'rating', got {by!r}")
        return "ranking" if by == "ranking" and self.ranker is not None else "rating"

    def recommend(self, user_id: int, k: int = 10, exclude_seen: bool = True, by: str = "ranking") -> pd.DataFrame:
        """Top-``k`` movies for a raw user id, best first: ``rank, movie_id, score, predicted_rating,
        because_movie_id``.

        ``by="ranking"`` (default) orders by the ranking model and names, for each
        movie, the rated movie that contributes most to its score; ``by="rating"``
        orders by the rating model's (unclamped) predicted rating. Without a ranking
        model file, the rating order is used and ``attrs["by"]`` says so.
        """
        frame = self.recommend_many([user_id], k=k, exclude_seen=exclude_seen, by=by)
        out = frame[COLUMNS].reset_index(drop=True)
        out.attrs.update(frame.attrs)
        out.attrs["fallback"] = frame["fallback"].iloc[0] if len(frame) else None
        if out.attrs["fallback"]:
            out.attrs["by"] = "popularity"
        return out

    def recommend_many(self, user_ids, k: int = 10, exclude_seen: bool = True, by: str = "ranking") -> pd.DataFrame:
        """Top-``k`` for several users in blocks (one matrix product per block of users):
        ``user_id, rank, movie_id, score, predicted_rating, because_movie_id, fallback``."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        by = self._check_by(by)
        user_ids = np.atleast_1d(np.asarray(user_ids, dtype=np.int64))
        mapping = self._ranking.users if by == "ranking" else self.users
        known = mapping.known(user_ids)
        frames = []
        if known.any():
            frames.append(self._ranked(user_ids[known], k, exclude_seen, by))
        if (~known).any():
            frames.append(self._popular(user_ids[~known], k))
        if not frames:
            return pd.DataFrame(columns=["user_id", *COLUMNS, "fallback"])
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        if len(frames) > 1:  # known and unknown users: back in the order asked (each part is in it already)
            order = {u: i for i, u in enumerate(dict.fromkeys(user_ids.tolist()))}
            frame = frame.sort_values(
                ["user_id", "rank"],
                key=lambda s: s.map(order) if s.name == "user_id" else s,
                kind="stable",
                ignore_index=True,
            )
        frame.attrs["by"] = by
        return frame

    def _ranked(self, user_ids: np.ndarray, k: int, exclude_seen: bool, by: str) -> pd.DataFrame:
        if by == "ranking":
            r = self._ranking
            u = r.users.encode(user_ids)
            result = r.ranked_pool(u, k, mask=exclude_seen)
            rows = np.arange(len(u))[:, None]
            movie_ids = np.where(result.movies >= 0, r.movies.ids[np.maximum(result.movies, 0)], -1)
            keep = self._coherent(user_ids, movie_ids, *self._listable(result), r.seen, u, k=k)
            result.movies, result.scores, movie_ids = (
                result.movies[rows, keep],
                result.scores[rows, keep],
                movie_ids[rows, keep],
            )
            because = r.because(u, result.movies)
            because_ids = np.where(because >= 0, r.movies.ids[np.maximum(because, 0)], -1)
            scores = result.scores.astype(np.float64)
        else:
            u = self.users.encode(user_ids)
            result = top_n(
                self.user_factors,
                self.movie_factors,
                self.seen_matrix if exclude_seen else None,
                k=k,
                users=u,
                movie_bias=self.movie_bias,
            )
            movie_ids = self.movies.ids[result.movies]
            because_ids = np.full(movie_ids.shape, -1, dtype=np.int64)
            scores = result.scores + (self.global_mean + self.user_bias[u])[:, None]
        finite = np.isfinite(scores)  # fewer unseen movies than k: -inf rows are dropped
        n = movie_ids.shape[1]
        users_rep = np.repeat(user_ids, n)
        frame = pd.DataFrame(
            {
                "user_id": users_rep,
                "rank": np.tile(np.arange(1, n + 1), len(user_ids)),
                "movie_id": movie_ids.ravel(),
                "score": scores.ravel(),
                "predicted_rating": self.predict(users_rep, movie_ids.ravel()),
                "because_movie_id": because_ids.ravel(),
                "fallback": None,
            }
        )
        return frame[finite.ravel()].reset_index(drop=True)

    def _listable(self, result) -> tuple[np.ndarray, np.ndarray]:
        """Which movies of ranked pools the ranking model lets into a list: enough ratings (unless ``support`` is
        off) and within its exposure limit (unless ``exposure`` is off); and which are within that limit (a list
        short of movies that pass is filled from those first)."""
        r = self._ranking
        within = admitted(result.movies, result.scores, r.exposure if self.exposure else None)
        within &= result.movies >= 0
        return (r.supported(result.movies) if self.support else result.movies >= 0) & within, within

    def _coherent(
        self,
        user_ids,
        movie_ids: np.ndarray,
        listable: np.ndarray,
        within: np.ndarray,
        seen: UserItems,
        rows: np.ndarray,
        *,
        k: int,
    ) -> np.ndarray:
        """Per user, the positions of the ``k`` movies listed, in ranking order: the best-ranked ones, leaving
        out those :meth:`_listable` leaves out (``listable`` false: too few ratings, past the exposure limit)
        and those the rating model predicts clearly below the user's mean rating (by more than
        ``coherent_margin`` stars), while enough others remain (those ``within`` their exposure limit fill a
        short list first). A left-out movie is never moved: the kept positions stay sorted, so the list's scores
        never rise down the list."""
        passes = listable & (movie_ids >= 0)
        if self.coherent:
            users_rep = np.repeat(np.asarray(user_ids, dtype=np.int64), movie_ids.shape[1])
            predicted = self.predict(users_rep, np.maximum(movie_ids, 0).ravel()).reshape(movie_ids.shape)
            passes &= predicted >= user_means(seen, rows)[:, None] - self.coherent_margin - 1e-6
        return kept(passes, k, then=within)

    def _popular(self, user_ids: np.ndarray, k: int) -> pd.DataFrame:
        counts = self.popularity()
        order = np.argsort(-counts, kind="stable")[: min(k, len(counts))]
        n = len(order)
        movie_ids = np.tile(self.movies.ids[order], len(user_ids))
        return pd.DataFrame(
            {
                "user_id": np.repeat(user_ids, n),
                "rank": np.tile(np.arange(1, n + 1), len(user_ids)),
                "movie_id": movie_ids,
                "score": np.tile(counts[order].astype(np.float64), len(user_ids)),  # the ratings count it is ordered by
                "predicted_rating": np.tile(self.new_user_ratings(order), len(user_ids)),
                "because_movie_id": -1,
                "fallback": "popularity",
            }
        )

    def popularity(self) -> np.ndarray:
        """Ratings per movie (rating model's index), the order of the most-popular fallback."""
        if self.movie_counts is not None:
            return np.asarray(self.movie_counts, dtype=np.float64)
        if self.seen_matrix is not None:
            return self.seen_matrix.movie_counts().astype(np.float64)
        return np.zeros(len(self.movies))

    # ---- similar movies ----------------------------------------------------------------------

    @property
    def similar_by(self) -> str:
        """Whose movie factors :meth:`similar_movies` uses: the model that ranks better on the validation
        split (NDCG@10 in each file's metrics); the ranking model when the rating file has no figure."""
        if self.ranker is None:
            return "rating"
        ranking_ndcg = self.ranker.metrics.get("val_ndcg_at_10", 0.0)
        rating_ndcg = self.info.get("metrics", {}).get("ndcg_at_10")
        return "rating" if rating_ndcg is not None and rating_ndcg > ranking_ndcg else "ranking"

    @property
    def _ranking(self) -> RankingModel:
        """The ranking model (callers have checked that one is loaded)."""
        if self.ranker is None:
            raise ValueError("no ranking model is loaded")
        return self.ranker

    def similar_movies(self, movie_id: int, k: int = 10, genres: pd.Series | None = None) -> pd.DataFrame:
        """The ``k`` movies most like ``movie_id``: ``rank, movie_id, similarity``; ``attrs`` name the query
        movie and the signal used. With the ranking model's item-item weights (learnt from who rated
        what together, and how high) those come first, with the factor cosine breaking ties; otherwise the cosine of the
        movie factors of the model that ranks better on validation (:attr:`similar_by`). ``genres`` (movie id ->
        ``"Animation|Comedy"``, :func:`~recsys_assets.core.presentation.read_genres`) adds ``GENRE_WEIGHT`` times
        the genre overlap, so likeness rather than co-popularity leads."""
        r = self.ranker
        if r is not None and r.item_item is not None:
            factors, weights, mapping, by = r.item_factors, r.item_item, r.movies, "item-item"
        else:
            by = self.similar_by
            factors, weights, mapping = (
                (self._ranking.item_factors, None, self._ranking.movies)
                if by == "ranking"
                else (self.movie_factors, None, self.movies)
            )
        if not mapping.known([movie_id])[0]:
            raise KeyError(f"movie {movie_id} is not known to the model")
        movie = int(mapping.encode([movie_id])[0])
        bonus = None
        if genres is not None:
            bonus = GENRE_WEIGHT * genre_likeness(self._genres(genres, mapping), movie)
        top, sims = neighbours(factors, weights, movie, k, bonus)
        frame = pd.DataFrame(
            {"rank": np.arange(1, len(top) + 1), "movie_id": mapping.ids[top], "similarity": sims.astype(np.float32)}
        )
        frame.attrs.update(query_movie_id=int(movie_id), by=by + (" and genres" if genres is not None else ""))
        return frame

    def _genres(self, genres: pd.Series, mapping: IdMapping) -> np.ndarray:
        """:func:`genre_matrix` for ``mapping``'s movies, built once per genres table."""
        cached = self._genre_cache
        if cached is None or cached[0] is not genres or cached[1] is not mapping:
            cached = self._genre_cache = (genres, mapping, genre_matrix(genres, mapping.ids))
        return cached[2]

    def seen(self, user_index: int) -> np.ndarray:
        """Movie indices (rating model) that user ``user_index`` rated."""
        if self.seen_matrix is None:
            return np.empty(0, dtype=np.int64)
        return self.seen_matrix.row(user_index)
