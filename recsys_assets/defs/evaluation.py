"""Evaluation assets: top-N recommendations for every user and ranking quality on the validation split."""

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from recsys_assets.core.metrics import mae, rmse
from recsys_assets.core.ranking import popularity_top_n, ranking_metrics, top_n
from recsys_assets.core.recommender import Recommender
from recsys_assets.core.training import seen_matrix
from recsys_assets.defs.resources import RecsysStorage
from recsys_assets.defs.training import recommendation_model

OWNERS = ["team:recsys"]


class RecommendationsConfig(dg.Config):
    """How many movies to recommend per user."""

    k: int = Field(default=10, description="Movies per user.")
    block_size: int = Field(default=1024, description="Users scored per matrix product (bounds memory).")


class EvaluationConfig(dg.Config):
    """Ranking evaluation on the validation split."""

    k: int = Field(default=10, description="Cut-off of the ranking metrics.")
    relevance_threshold: float = Field(default=4.0, description="A validation rating at or above this is relevant.")


def _recommender(storage: RecsysStorage) -> Recommender:
    with storage.store.read(storage.MODEL) as path:
        return Recommender.load(path)


def _titles(storage: RecsysStorage) -> pd.Series | None:
    path = storage.movies_file
    if path is None or not path.exists():
        return None
    movies = pd.read_csv(path, usecols=["movieId", "title"])
    return movies.set_index("movieId")["title"]


@dg.asset(deps=[recommendation_model], group_name="evaluation", kinds={"pandas", "parquet"}, owners=OWNERS)
def user_recommendations(context: dg.AssetExecutionContext, config: RecommendationsConfig, storage: RecsysStorage) -> dg.Output[pd.DataFrame]:
    """Top-N movies for every user that the user has not rated: user_id, rank, movie_id, score (and title).

    Computed in blocks of users (one matrix product and one top-k per block), so memory
    stays bounded on large catalogues. Titles come from a MovieLens movies.csv set by
    RECSYS_MOVIES_PATH, when given.
    """
    rec = _recommender(storage)
    result = top_n(rec.user_factors, rec.user_bias, rec.movie_factors, rec.movie_bias, rec.global_mean,
                   rec.seen_indptr, rec.seen_indices, k=config.k, block=config.block_size)
    k = result.movies.shape[1]
    frame = pd.DataFrame({
        "user_id": np.repeat(rec.users.ids[result.users], k),
        "rank": np.tile(np.arange(1, k + 1), len(result.users)),
        "movie_id": rec.movies.ids[result.movies.ravel()],
        "score": np.clip(result.scores.ravel(), *rec.rating_range).astype(np.float32),
    })
    titles = _titles(storage)
    if titles is not None:
        frame["title"] = frame["movie_id"].map(titles).astype("string")
    preview = frame[frame["user_id"].isin(frame["user_id"].unique()[:3])]
    return dg.Output(frame, metadata={
        "dagster/row_count": dg.MetadataValue.int(len(frame)),
        "users": dg.MetadataValue.int(len(result.users)),
        "k": dg.MetadataValue.int(k),
        "preview": dg.MetadataValue.md(preview.to_markdown(index=False) if _has_tabulate() else preview.to_string(index=False)),
    })


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


@dg.asset(deps=[recommendation_model], group_name="evaluation", kinds={"pandas", "parquet"}, owners=OWNERS)
def model_evaluation(
    context: dg.AssetExecutionContext,
    config: EvaluationConfig,
    storage: RecsysStorage,
    train_ratings: pd.DataFrame,
    val_ratings: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    """Ranking quality on the validation split beside a most-popular baseline, plus RMSE and MAE.

    Relevant = a validation rating at or above relevance_threshold. Each user's training
    movies are excluded from both rankings. Columns: metric, model, popularity.
    """
    rec = _recommender(storage)
    known = rec.users.known(train_ratings["user_id"]) & rec.movies.known(train_ratings["movie_id"])
    tu = rec.users.encode(train_ratings["user_id"][known])
    tm = rec.movies.encode(train_ratings["movie_id"][known])
    indptr, indices = seen_matrix(tu, tm, len(rec.users))
    good = val_ratings[val_ratings["rating"] >= config.relevance_threshold]
    good = good[rec.users.known(good["user_id"]) & rec.movies.known(good["movie_id"])]
    vu, vm = rec.users.encode(good["user_id"]), rec.movies.encode(good["movie_id"])
    relevant: dict[int, set] = {}
    for u, m in zip(vu.tolist(), vm.tolist()):
        relevant.setdefault(u, set()).add(m)
    users = np.array(sorted(relevant), dtype=np.int64)
    k = config.k
    model_recs = top_n(rec.user_factors, rec.user_bias, rec.movie_factors, rec.movie_bias, rec.global_mean,
                       indptr, indices, k=k, users=users).movies
    pop_recs = popularity_top_n(np.bincount(tm, minlength=len(rec.movies)), users, indptr, indices, k)
    model_m = ranking_metrics(model_recs, users, relevant, k, len(rec.movies))
    pop_m = ranking_metrics(pop_recs, users, relevant, k, len(rec.movies))
    pred = rec.predict(val_ratings["user_id"].to_numpy(), val_ratings["movie_id"].to_numpy())
    model_m.update(rmse=rmse(pred, val_ratings["rating"]), mae=mae(pred, val_ratings["rating"]))
    frame = pd.DataFrame({"metric": list(model_m), "model": [float(model_m[x]) for x in model_m],
                          "popularity": [float(pop_m.get(x, np.nan)) for x in model_m]})
    metadata = {f"model_{name}": dg.MetadataValue.float(float(v)) for name, v in model_m.items()}
    metadata.update({f"popularity_{name}": dg.MetadataValue.float(float(v)) for name, v in pop_m.items()})
    context.log.info(f"NDCG@{k}: model {model_m[f'ndcg_at_{k}']:.4f}, popularity {pop_m[f'ndcg_at_{k}']:.4f}")
    return dg.Output(frame, metadata=metadata)
