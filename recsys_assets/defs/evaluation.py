"""Evaluation assets: top-N recommendations for every user, and every ranker side by side on the validation split."""

import base64
from typing import TYPE_CHECKING

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from recsys_assets.core.ids import IdMapping, mappings_from_table
from recsys_assets.core.plots import plot_ranker_comparison
from recsys_assets.core.presentation import markdown_table, read_titles, reasons
from recsys_assets.core.rating.metrics import mae, rmse
from recsys_assets.core.recommender import COHERENT_MARGIN
from recsys_assets.defs.owners import OWNERS
from recsys_assets.defs.publishing import provenance
from recsys_assets.defs.ranking import ranking_model
from recsys_assets.defs.resources import COLUMN_SCHEMA_OFF, RecsysStorage
from recsys_assets.defs.training import recommendation_model

if TYPE_CHECKING:  # the scoring code (PyTorch) is imported by the evaluation steps themselves
    from recsys_assets.core.ranking.model import RankingModel
    from recsys_assets.core.recommender import Recommender


class RecommendationsConfig(dg.Config):
    """How many movies to recommend per user, and what orders them."""

    k: int = Field(default=10, description="Movies per user.")
    by: str = Field(
        default="ranking",
        description="'ranking': ordered by the ranking model (falls back to the rating order when none is published); "
        "'rating': ordered by the rating model's predicted rating.",
    )
    coherent: bool = Field(
        default=True,
        description="Leave out movies the rating model predicts clearly below the user's mean rating (while enough "
        "of the best-ranked remain); the list keeps the ranking order either way. false: the ranking order alone.",
    )
    coherent_margin: float = Field(
        default=COHERENT_MARGIN,
        ge=0,
        description="How many stars below the user's mean rating a prediction must be to leave the movie out.",
    )


class EvaluationConfig(dg.Config):
    """Ranking evaluation on the validation split."""

    k: int = Field(default=10, description="Cut-off of the ranking metrics.")
    relevance_threshold: float = Field(default=4.0, description="A validation rating at or above this is relevant.")


def _recommender(storage: RecsysStorage) -> "Recommender":
    """The published rating model with the published ranking model, when there is one."""
    from recsys_assets.core.recommender import Recommender

    return Recommender.from_store(storage.store, storage.MODEL)


@dg.asset(
    deps=[recommendation_model, ranking_model], group_name="evaluation", kinds={"pandas", "parquet"}, owners=OWNERS
)
def user_recommendations(
    context: dg.AssetExecutionContext, config: RecommendationsConfig, storage: RecsysStorage
) -> dg.Output[pd.DataFrame]:
    """Top-N unseen movies for every user, in the ranking model's order, with the rating model's
    predicted stars, a "because you rated ..." reason and titles when RECSYS_MOVIES_PATH is set.
    """
    rec = _recommender(storage)
    rec.coherent, rec.coherent_margin = config.coherent, config.coherent_margin
    if config.by == "ranking" and rec.ranker is None:
        context.log.warning("no ranking model is published: recommendations are ordered by predicted rating")
    user_ids = rec.ranker.users.ids if rec.ranker is not None and config.by == "ranking" else rec.users.ids
    frame = rec.recommend_many(user_ids, k=config.k, by=config.by).drop(columns=["fallback"])
    frame["predicted_rating"] = frame["predicted_rating"].astype(np.float32)
    frame["score"] = frame["score"].astype(np.float32)
    titles = read_titles(storage.movies_file, required=False)
    if titles is not None and titles.attrs["skipped_rows"]:
        context.log.warning(
            f"{storage.movies_file}: skipped {titles.attrs['skipped_rows']:,} rows without an integer movieId or a title"
        )
    frame["reason"] = reasons(frame["because_movie_id"], titles)
    if titles is not None:
        frame["title"] = frame["movie_id"].map(titles).astype("string")
    counts = rec.ranker.seen.movie_counts() if rec.ranker is not None else rec.popularity()
    mapping = rec.ranker.movies if rec.ranker is not None else rec.movies
    rec_counts = counts[mapping.encode(frame["movie_id"], unknown=0)]
    top_share = frame["movie_id"].value_counts().iloc[0] / max(len(user_ids), 1) if len(frame) else 0.0
    top100 = mapping.ids[np.argsort(-counts, kind="stable")[:100]]
    preview = frame[frame["user_id"].isin(frame["user_id"].unique()[:3])]
    return dg.Output(
        frame,
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(frame)),
            "users": dg.MetadataValue.int(len(user_ids)),
            "k": dg.MetadataValue.int(config.k),
            "ranked_by": dg.MetadataValue.text(frame.attrs.get("by", config.by)),
            "distinct_movies": dg.MetadataValue.int(int(frame["movie_id"].nunique())),
            "median_rating_count": dg.MetadataValue.float(float(np.median(rec_counts)) if len(rec_counts) else 0.0),
            "most_common_movie_share": dg.MetadataValue.float(round(float(top_share), 4)),
            "coverage": dg.MetadataValue.float(round(frame["movie_id"].nunique() / max(len(mapping), 1), 4)),
            "top100_share": dg.MetadataValue.float(round(float(frame["movie_id"].isin(top100).mean()), 4)),
            "preview": dg.MetadataValue.md(markdown_table(preview)),
            **provenance(context, config.model_dump()),
        },
    )


def _exposure_curve(context, storage: RecsysStorage, ranker, parts, frame: pd.DataFrame, data, *, k: int) -> dict:
    """The ranking model's NDCG against coverage at each exposure limit (core/ranking/exposure.py), on at most
    20,000 validation users, as a table and a chart (``model_evaluation_exposure.png``); {} without a ranker."""
    if ranker is None or parts is None:
        return {}
    from recsys_assets.core.plots import plot_exposure_curve
    from recsys_assets.core.ranking.exposure import exposure_curve

    seen, held = data
    users = held.users
    if len(users) > 20_000:
        users = np.sort(np.random.default_rng(0).choice(users, 20_000, replace=False))
    curve = exposure_curve(parts, ranker.weights, seen, held, users, k=k, min_ratings=ranker.min_ratings)
    others = {
        row.ranker: (float(row.coverage), float(getattr(row, f"ndcg_at_{k}")))
        for row in frame.itertuples()
        if row.ranker != "ranking model"
    }
    with storage.store.write(storage.EXPOSURE_PLOT) as tmp:
        plot_exposure_curve(curve, tmp, k=k, chosen=ranker.max_exposure, others=others)
    table = pd.DataFrame(
        {
            "exposure limit": ["none" if r["max_exposure"] >= 1 else f"{r['max_exposure']:.0%}" for r in curve],
            f"NDCG@{k}": [round(r[f"ndcg_at_{k}"], 4) for r in curve],
            "coverage": [round(r["coverage"], 4) for r in curve],
            "top-100 share": [round(r["top100_share"], 3) for r in curve],
            "most-shown movie's share": [round(r["max_movie_share"], 3) for r in curve],
        }
    )
    published = next((row for row in curve if abs(row["max_exposure"] - ranker.max_exposure) < 1e-9), None)
    if published is not None:
        context.log.info(
            f"exposure limit {ranker.max_exposure:g}: NDCG@{k} {published[f'ndcg_at_{k}']:.4f}, coverage "
            f"{published['coverage']:.3f}, most-shown movie in {published['max_movie_share']:.1%} of the lists"
        )
    return {
        "exposure_curve": dg.MetadataValue.md(markdown_table(table, floatfmt=".4g")),
        "exposure_chart_path": dg.MetadataValue.path(storage.store.url(storage.EXPOSURE_PLOT)),
    }


def _held_out_fit(context: dg.AssetExecutionContext, rec: "Recommender"):
    """The rating model's held-out fit (training split only, stored in its file; the release's reading): the
    published refit trained on the validation ratings, so scoring it there would flatter it."""
    from recsys_assets.core.release.rating_evidence import held_out_fit

    fit = held_out_fit(rec)
    if fit is rec:
        context.log.warning("the rating model file has no held-out fit: its published weights are scored")
    return fit


def _rating_ranker(fit, users: IdMapping, movies: IdMapping, seen):
    """The rating model's held-out fit as a ranker over the evaluation's indices (predicted-rating order)."""
    from recsys_assets.core.ranking import factor_ranker
    from recsys_assets.core.ranking.model import aligned

    bias = np.zeros(len(movies), dtype=np.float32)
    known_m = fit.movies.known(movies.ids)
    bias[known_m] = fit.movie_bias[fit.movies.encode(movies.ids[known_m])]
    return factor_ranker(
        aligned(fit.user_factors, fit.users, users),
        aligned(fit.movie_factors, fit.movies, movies),
        seen,
        movie_bias=bias,
    )


@dg.asset(
    deps=[recommendation_model, ranking_model],
    group_name="evaluation",
    kinds={"pandas", "parquet"},
    owners=OWNERS,
    metadata={COLUMN_SCHEMA_OFF: True},  # no "Columns" block above the chart: its columns are in the docs
)
def model_evaluation(
    context: dg.AssetExecutionContext,
    config: EvaluationConfig,
    storage: RecsysStorage,
    user_movie_mappings: pd.DataFrame,
    train_ratings: pd.DataFrame,
    val_ratings: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    """Every ranker side by side on the validation split: the ranking model, the rating model, most popular.

    NDCG, precision, recall and hit rate at k, coverage and popularity shares, one row per ranker; the
    labelled chart comes first on this page (docs/guide/running.md, "What model_evaluation reports", explains each column).
    """
    from recsys_assets.core.ranking import HeldOut, UserItems, evaluate_rankers, popularity_ranker
    from recsys_assets.core.ranking.blend import blend_ranker

    users, movies = mappings_from_table(user_movie_mappings)
    k = config.k
    enc = lambda frame: (users.encode(frame["user_id"]), movies.encode(frame["movie_id"]))  # noqa: E731
    tu, tm = enc(train_ratings)
    seen = UserItems.from_pairs(tu, tm, len(users), len(movies), train_ratings["rating"].to_numpy(np.float32))
    vu, vm = enc(val_ratings)
    held = HeldOut.from_ratings(
        vu, vm, val_ratings["rating"].to_numpy(), len(users), len(movies), config.relevance_threshold
    )
    rec = _recommender(storage)
    fit = _held_out_fit(context, rec)
    rankers = {}
    ranker: RankingModel | None = rec.ranker
    parts = ranker.evaluation_components(seen, users, movies) if ranker is not None else None
    if ranker is not None and parts is not None:
        rankers["ranking model"] = blend_ranker(parts, ranker.weights, seen)
    else:
        context.log.warning("no published ranking model with a held-out fit: it is left out of the comparison")
    rankers["rating model (MF)"] = _rating_ranker(fit, users, movies, seen)
    rankers["most popular"] = popularity_ranker(seen)
    scores = evaluate_rankers(rankers, seen, held, k)
    names = [
        f"ndcg_at_{k}",
        f"precision_at_{k}",
        f"recall_at_{k}",
        f"hit_rate_at_{k}",
        "coverage",
        "top100_share",
        "max_movie_share",
        "median_rating_count",
        "users_evaluated",
    ]
    frame = pd.DataFrame(
        [{"ranker": name, **{m: float(s.metrics.get(m, np.nan)) for m in names}} for name, s in scores.items()]
    )
    pred = fit.predict(val_ratings["user_id"].to_numpy(), val_ratings["movie_id"].to_numpy())
    key = {"ranking model": "ranking", "rating model (MF)": "rating", "most popular": "popular"}
    metadata = {
        f"{key[row.ranker]}_{m}": dg.MetadataValue.float(round(float(getattr(row, m)), 4))
        for row in frame.itertuples()
        for m in names
    }
    metadata.update(
        rating_rmse=dg.MetadataValue.float(round(rmse(pred, val_ratings["rating"]), 4)),
        rating_mae=dg.MetadataValue.float(round(mae(pred, val_ratings["rating"]), 4)),
        table=dg.MetadataValue.md(markdown_table(frame)),
    )
    from recsys_assets.core.sparkline import bars_markdown

    ndcg = [float(getattr(row, f"ndcg_at_{k}")) for row in frame.itertuples()]
    # small enough for the UI to show on the asset page itself, so it goes first
    store = storage.store
    with store.write(storage.EVALUATION_PLOT) as tmp:
        encoded = base64.b64encode(plot_ranker_comparison(frame, tmp, k=k).read_bytes()).decode()
    # the labelled chart first (small enough for the UI to show inline), the full-size figure one click away
    metadata = {
        "ndcg": dg.MetadataValue.md(bars_markdown(list(frame["ranker"]), ndcg, f"NDCG@{k}")),
        "chart": dg.MetadataValue.md(f"![Rankers side by side](data:image/png;base64,{encoded})"),
        "chart_path": dg.MetadataValue.path(store.url(storage.EVALUATION_PLOT)),
        **_exposure_curve(context, storage, ranker, parts, frame, (seen, held), k=k),
        **metadata,
    }
    metadata.update(provenance(context, config.model_dump()))
    summary = ", ".join(f"{row.ranker} {getattr(row, f'ndcg_at_{k}'):.4f}" for row in frame.itertuples())
    context.log.info(f"NDCG@{k}: {summary}")
    return dg.Output(frame, metadata=metadata)
