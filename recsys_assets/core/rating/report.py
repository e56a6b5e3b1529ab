"""``ModelReport``: what a trained rating model scored, what it must beat, and whether it is published.

The training asset builds one with :func:`build_report` and only turns it into
check results and metadata; :func:`~recsys_assets.core.rating.model_file.save_model_file`
writes the report's metrics and seen-movie index into the model file.  The
publishing rule lives here, in one place: a model is published when its
weights are finite and its validation RMSE is below the global mean's.
"""

from dataclasses import dataclass, replace

import numpy as np
import torch

from recsys_assets.core.ids import IdMapping
from recsys_assets.core.promotion import DataSize, Evidence, Promotion, PromotionPolicy, rmse_evidence
from recsys_assets.core.publishing import judge
from recsys_assets.core.ranking import HeldOut, UserItems, evaluate_rankers, factor_ranker, seen_matrix
from recsys_assets.core.rating.dataset import MovieRatingDataset
from recsys_assets.core.rating.metrics import baselines


@dataclass(frozen=True)
class ModelReport:
    """Metrics and baselines of one trained model on its validation split, and the seen-movie index.

    ``metrics`` holds ``train_loss``, ``val_loss``, ``val_rmse``, ``val_mae``
    (the best epoch's), ``global_mean_rmse``, ``bias_only_rmse`` and
    ``ndcg_at_10``.  ``seen_indptr``/``seen_indices`` are the movies each user
    has rated (CSR over user indices); ``movie_counts`` the ratings per movie.
    """

    metrics: dict[str, float]
    weights_finite: bool
    seen_indptr: np.ndarray
    seen_indices: np.ndarray
    movie_counts: np.ndarray
    promotion: Promotion | None = None  # against the published model (None: not decided)

    @property
    def data_size(self) -> DataSize:
        """Users, movies and ratings (train + validation) the model was built from."""
        return DataSize(len(self.seen_indptr) - 1, len(self.movie_counts), len(self.seen_indices))

    @property
    def beats_global_mean(self) -> bool:
        return bool(self.metrics.get("val_rmse", np.inf) < self.metrics.get("global_mean_rmse", -np.inf))

    @property
    def beats_bias_only(self) -> bool:
        return bool(self.metrics.get("val_rmse", np.inf) < self.metrics.get("bias_only_rmse", -np.inf))

    @property
    def promotable(self) -> bool:
        """The promotion rule lets this model replace the published one."""
        return self.promotion is None or self.promotion.publish

    @property
    def publish(self) -> bool:
        """The blocking rule: finite weights, a validation RMSE below the global mean's, and promotable."""
        return self.weights_finite and self.beats_global_mean and self.promotable

    @property
    def rejection(self) -> str | None:
        """Why the model is not published, or None when it is."""
        if self.publish:
            return None
        reasons = []
        if not self.weights_finite:
            reasons.append("NaN or infinite weights")
        if not self.beats_global_mean:
            reasons.append(
                f"val RMSE {self.metrics.get('val_rmse', float('nan')):.4f} is not below the global mean's "
                f"{self.metrics.get('global_mean_rmse', float('nan')):.4f}"
            )
        if self.promotion is not None:
            reasons += self.promotion.reasons
        return "; ".join(reasons)


def build_report(
    result,
    train: MovieRatingDataset,
    val: MovieRatingDataset,
    *,
    n_users: int,
    n_movies: int,
    rating_range: tuple[float, float] | None = None,  # None: the rating scale (core/rating_scale.py)
    seen: tuple[np.ndarray, np.ndarray] | None = None,
) -> ModelReport:
    """The report of a :class:`~recsys_assets.core.rating.training.TrainResult` on its splits; ``seen``: every
    (user, movie) index pair of the export (default: train + val), which the published file never
    recommends back."""
    best = next(h for h in result.history if h["epoch"] == result.best_epoch) if result.history else {}
    metrics = {name: float(best.get(name, float("nan"))) for name in ("train_loss", "val_loss", "val_rmse", "val_mae")}
    metrics.update(
        baselines(train.arrays(), val.arrays(), n_users=n_users, n_movies=n_movies, rating_range=rating_range)
    )
    finite = bool(result.model.all_finite())
    metrics["ndcg_at_10"] = (
        rating_ndcg(result.model.state_dict(), train, val, n_users=n_users, n_movies=n_movies)
        if finite
        else float("nan")
    )
    all_users, all_movies = seen if seen is not None else train.concat(val).arrays()[:2]
    indptr, indices = seen_matrix(all_users, all_movies, n_users)
    return ModelReport(
        metrics=metrics,
        weights_finite=finite,
        seen_indptr=indptr,
        seen_indices=indices,
        movie_counts=np.bincount(all_movies, minlength=n_movies),
    )


def rating_ndcg(
    state: dict, train: MovieRatingDataset, val: MovieRatingDataset, *, n_users: int, n_movies: int
) -> float:
    """NDCG@10 of ranking by predicted rating on the validation split (training movies excluded).

    Same protocol as the ranking model's, so ``Recommender.similar_movies`` can use the better factors."""
    train_u, train_m, _ = train.arrays()
    seen = UserItems.from_pairs(train_u, train_m, n_users, n_movies)
    held = HeldOut.from_ratings(*val.arrays(), n_users, n_movies)
    ranker = factor_ranker(
        state["user_factors.weight"].cpu().numpy(),
        state["movie_factors.weight"].cpu().numpy(),
        seen,
        movie_bias=state["movie_bias.weight"].cpu().numpy()[:, 0],
    )
    return float(evaluate_rankers({"rating": ranker}, seen, held)["rating"].metrics["ndcg_at_10"])


def rating_evidence(model, val: MovieRatingDataset, users: IdMapping, movies: IdMapping, current) -> Evidence:
    """The candidate ``model`` and the published :class:`~recsys_assets.core.recommender.Recommender`
    ``current``, scored on the validation ratings ``current`` never trained on (clamped predictions)."""
    val_users, val_movies, ratings = val.arrays()
    raw_users, raw_movies = users.ids[val_users], movies.ids[val_movies]
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        candidate = model(val.users.to(device), val.movies.to(device)).clamp(*current.rating_range).cpu().numpy()
    if current.seen_matrix is None:  # a file without its training pairs: no rating is known to be fresh
        fresh = np.zeros(len(ratings), bool)
    else:
        fresh = ~current.seen_matrix.contains(
            current.users.encode(raw_users, unknown=-1), current.movies.encode(raw_movies, unknown=-1)
        )
    return rmse_evidence(candidate, current.predict(raw_users, raw_movies), ratings.astype(np.float64), fresh)


def published_size(current) -> DataSize:
    """The data size of a published :class:`~recsys_assets.core.recommender.Recommender`'s rating model."""
    recorded = DataSize.from_dict(current.info.get("config", {}))
    if recorded is not None:
        return recorded
    ratings = current.seen_matrix.nnz if current.seen_matrix is not None else 0
    return DataSize(len(current.users), len(current.movies), ratings)


HELD_BACK = "ratings the published model held back (no published fit trained on them)"


def heldback_evidence(state: dict, users: IdMapping, movies: IdMapping, current) -> Evidence | None:
    """The candidate (a ``BiasedMF`` state dict) and the published ``current``, scored on ``current``'s
    held-back ratings (raw ids through each model's own mappings); None when its file has none."""
    from recsys_assets.core.recommender import Recommender

    held = current.info.get("heldback")
    if held is None or not len(held):
        return None
    candidate = Recommender.from_state(state, users, movies, rating_range=current.rating_range)
    return rmse_evidence(
        candidate.predict(held.users, held.movies),
        current.predict(held.users, held.movies),
        held.ratings.astype(np.float64),
        np.ones(len(held), bool),
        metric="held-back RMSE",
        on=HELD_BACK,
    )


def held_out_fit(current):
    """The published Recommender's held-out fit (training split only, kept in its file), which the candidate's
    held-out fit is compared with on fresh ratings (like with like: the refit saw more data); else ``current``."""
    from recsys_assets.core.recommender import Recommender

    state = current.info.get("evaluation_state")
    if state is None:
        return current
    return Recommender.from_state(
        state, current.users, current.movies, rating_range=current.rating_range, seen=current.seen_matrix
    )


def with_promotion(
    report: ModelReport,
    model,
    val: MovieRatingDataset,
    *,
    users: IdMapping,
    movies: IdMapping,
    current,
    policy: PromotionPolicy,
    published_state: dict | None = None,
    unrelated: str | None = None,
) -> ModelReport:
    """``report`` with the promotion decision against ``current`` (the published Recommender, or None).

    ``model`` (the held-out fit) is scored on the fresh validation ratings, ``published_state`` (the
    weights to publish, default ``model``'s) on ``current``'s held-back set; ``unrelated``: why
    ``current`` is of another export lineage (then nothing is compared)."""
    if current is None:
        return replace(report, promotion=judge(report.data_size, None, [], policy))
    evidence = []
    if report.weights_finite and unrelated is None:
        state = published_state if published_state is not None else model.state_dict()
        held = heldback_evidence(state, users, movies, current)
        evidence = [held] if held is not None else []
        evidence.append(rating_evidence(model, val, users, movies, held_out_fit(current)))
    promotion = judge(report.data_size, published_size(current), evidence, policy, unrelated=unrelated)
    return replace(report, promotion=promotion)


def epoch_summary(record: dict) -> str:
    """One epoch's figures, each labelled, with the time left if every remaining epoch ran."""
    left = (record["epochs"] - record["epoch"]) * record["elapsed"] / max(record["epoch"], 1)
    return (
        f"val RMSE {record['val_rmse']:.4f}, val MAE {record['val_mae']:.4f}, epoch time {record['seconds']:.1f}s, "
        f"elapsed {record['elapsed']:.1f}s, at most {left:.0f}s to go"
    )


def training_summary(result, config) -> str:
    """The training's last log line (a ``TrainResult`` under a ``TrainConfig``): why it stopped, which epoch was kept, its validation RMSE and the time."""
    if not result.history:
        return "no epoch was run"
    best = next(h for h in result.history if h["epoch"] == result.best_epoch)
    last = result.history[-1]["epoch"]
    how = (
        f"stopped early at epoch {last}/{config.epochs} (no improvement for {config.patience} epochs)"
        if result.stopped_early
        else f"ran all {last} epochs"
    )
    backoff = (
        f"; step size halved {len(result.learning_rate_backoffs)} time(s) to {result.final_learning_rate:g}"
        if result.learning_rate_backoffs
        else ""
    )
    return (
        f"training finished: {how}; best epoch {result.best_epoch} restored (val RMSE {best['val_rmse']:.4f}); "
        f"{result.train_seconds:.1f}s training{backoff}"
    )
