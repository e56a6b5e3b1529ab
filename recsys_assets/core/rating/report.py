"""``ModelReport``: what a trained rating model scored and what it must beat.

The training asset builds one with :func:`build_report` and turns it into
check results and metadata; :func:`~recsys_assets.core.rating.model_file.save_model_file`
writes the report's metrics and seen-movie index into the model file.  Whether the
model goes live is the release's question (``core/release/gates.py``).
"""

from dataclasses import dataclass

import numpy as np

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

    def data_size(self) -> dict[str, int]:
        """Users, movies and ratings (train + validation) the model was built from."""
        return {
            "n_users": len(self.seen_indptr) - 1,
            "n_movies": len(self.movie_counts),
            "n_ratings": len(self.seen_indices),
        }

    @property
    def beats_global_mean(self) -> bool:
        return bool(self.metrics.get("val_rmse", np.inf) < self.metrics.get("global_mean_rmse", -np.inf))

    @property
    def beats_bias_only(self) -> bool:
        return bool(self.metrics.get("val_rmse", np.inf) < self.metrics.get("bias_only_rmse", -np.inf))


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
