"""Training assets: the recommendation model file and its loss plot."""

import base64
import time
from dataclasses import asdict

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from recsys_assets.core.artifact import load_model_file, save_model_file
from recsys_assets.core.dataset import MovieRatingDataset, mappings_from_table
from recsys_assets.core.metrics import baselines
from recsys_assets.core.plots import plot_training_history
from recsys_assets.core.storage import exclusive_lock
from recsys_assets.core.ranking import HeldOut, UserItems, evaluate_rankers, factor_ranker, seen_matrix
from recsys_assets.core.training import TrainConfig, train_model
from recsys_assets.defs.executors import TRAINING_OP_TAGS
from recsys_assets.defs.resources import DeviceResource, RecsysStorage

OWNERS = ["team:recsys"]
_DEFAULTS = TrainConfig()


class TrainingConfig(dg.Config):
    """Hyper-parameters of the model and the training loop.

    The defaults (per-rating SGD, count-weighted L2, early stopping) are tuned for
    accuracy and speed (see the README); plain Adam is optimizer='adam' with
    batch_size=1024, learning_rate=0.001, epochs=10, reg_factors=0, reg_bias=0.
    """

    optimizer: str = Field(
        default=_DEFAULTS.optimizer,
        description="'sgd': fused per-rating SGD (fast, tuned default); 'adam': SparseAdam on the sparse embeddings.",
    )
    embedding_dim: int = Field(default=_DEFAULTS.embedding_dim, description="Size of the user and movie embeddings.")
    batch_size: int = Field(default=_DEFAULTS.batch_size, description="Ratings per optimizer step.")
    learning_rate: float = Field(default=_DEFAULTS.learning_rate, description="Step size of the optimizer (SGD or SparseAdam).")
    epochs: int = Field(default=_DEFAULTS.epochs, description="Maximum number of epochs.")
    reg_factors: float = Field(default=_DEFAULTS.reg_factors, description="L2 penalty on the batch's embedding rows.")
    reg_bias: float = Field(default=_DEFAULTS.reg_bias, description="L2 penalty on the batch's user and movie biases.")
    reg_count_exponent: float = Field(
        default=_DEFAULTS.reg_count_exponent,
        description="sgd: rows rated n times get L2 weight (mean_n / n) ** this; 0 = uniform.",
    )
    init_std: float = Field(default=_DEFAULTS.init_std, description="Standard deviation of the initial embeddings.")
    patience: int = Field(default=_DEFAULTS.patience, description="Epochs without validation improvement before stopping.")
    min_delta: float = Field(default=_DEFAULTS.min_delta, description="Smallest validation-loss decrease that counts as improvement.")
    seed: int = Field(default=_DEFAULTS.seed, description="Seed of initialization and shuffling.")

    def to_train_config(self, **environment) -> TrainConfig:
        """The core's config; ``environment`` adds the device resource's settings (``kernel``)."""
        return TrainConfig(**self.model_dump(), **environment)


MODEL_CHECKS = [
    dg.AssetCheckSpec("weights_finite", asset="recommendation_model", blocking=True,
                      description="Every model weight is finite."),
    dg.AssetCheckSpec("beats_global_mean", asset="recommendation_model", blocking=True,
                      description="Validation RMSE is below the global-mean baseline's."),
    dg.AssetCheckSpec("beats_bias_only", asset="recommendation_model", blocking=False,
                      description="Validation RMSE is below the bias-only baseline's (warning)."),
]


@dg.asset(group_name="training", kinds={"pytorch"}, owners=OWNERS, check_specs=MODEL_CHECKS, pool="recsys_training",
          op_tags=TRAINING_OP_TAGS)
def recommendation_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    storage: RecsysStorage,
    device: DeviceResource,
    user_movie_mappings: pd.DataFrame,
    train_ratings: pd.DataFrame,
    val_ratings: pd.DataFrame,
) -> dg.MaterializeResult:
    """The trained rating model, saved as recommendation_model.pth in the data folder.

    Biased matrix factorization trained with MSE loss on the training split and
    validated every epoch, with early stopping. The file holds model_state_dict,
    user_mapping, movie_mapping, optimizer_state_dict, the config, the per-epoch
    history and the metrics, and loads with torch.load(..., weights_only=True).
    """
    torch_device = device.torch_device()  # an unavailable device fails here, before any work
    train_config = config.to_train_config(kernel=device.kernel)
    users, movies = mappings_from_table(user_movie_mappings)
    train = MovieRatingDataset.from_frame(train_ratings, users, movies)
    val = MovieRatingDataset.from_frame(val_ratings, users, movies)
    context.log.info(
        f"training on {torch_device}: {len(train):,} ratings, {len(val):,} for validation, "
        f"{len(users):,} users, {len(movies):,} movies"
    )

    def log_epoch(record: dict) -> None:
        context.log.info(f"{record['message']}\n(val RMSE {record['val_rmse']:.4f}, {record['seconds']:.1f}s, {record['elapsed']:.1f}s elapsed)")

    checkpoint = storage.checkpoint_dir / "recommendation_model.training.pt"
    started = time.perf_counter()
    with exclusive_lock(storage.lock_dir / "recommendation_model.lock", "recommendation_model"):
        if storage.restore_checkpoints():
            context.log.info(f"fetched the checkpoints mirrored in {storage.store.url(storage.CHECKPOINTS)}")
        mirror = None if storage.is_local else storage.store

        def on_epoch(record: dict) -> None:
            log_epoch(record)
            if mirror is not None:  # the epoch's checkpoint is written: mirror it for a rerun elsewhere
                storage.mirror_checkpoints(mirror)

        result = train_model(
            train, val, len(users), len(movies), train_config,
            device=torch_device, on_epoch=on_epoch, checkpoint_path=checkpoint,
        )
        return _publish(context, storage, result, train, val, users, movies, train_config, torch_device, checkpoint, started)


def _publish(context, storage, result, train, val, users, movies, train_config, torch_device, checkpoint, started):
    """Check the trained model and publish its file only if the blocking checks pass."""
    best = next(h for h in result.history if h["epoch"] == result.best_epoch)
    base = baselines(
        train.users.numpy(), train.movies.numpy(), train.ratings.numpy(),
        val.users.numpy(), val.movies.numpy(), val.ratings.numpy(),
        len(users), len(movies), (train_config.rating_min, train_config.rating_max),
    )
    metrics = {
        "train_loss": best["train_loss"],
        "val_loss": best["val_loss"],
        "val_rmse": best["val_rmse"],
        "val_mae": best["val_mae"],
        **base,
    }
    metrics["ndcg_at_10"] = _ranking_ndcg(result.model, train, val, len(users), len(movies))
    all_users = np.concatenate([train.users.numpy(), val.users.numpy()])
    all_movies = np.concatenate([train.movies.numpy(), val.movies.numpy()])
    indptr, indices = seen_matrix(all_users, all_movies, len(users))
    finite = result.model.all_finite()
    beats_mean = bool(metrics["val_rmse"] < metrics["global_mean_rmse"])
    beats_bias = bool(metrics["val_rmse"] < metrics["bias_only_rmse"])
    publish = finite and beats_mean
    store = storage.store
    target = storage.MODEL if publish else storage.REJECTED_MODEL
    with store.write(target) as tmp:
        save_model_file(
            tmp,
            model_state=result.model.state_dict(),
            optimizer_state=result.optimizer.state_dict(),
            user_ids=users.ids,
            movie_ids=movies.ids,
            config={**asdict(train_config), "n_users": len(users), "n_movies": len(movies)},
            history=result.history,
            metrics=metrics,
            seen_indptr=indptr,
            seen_indices=indices,
            movie_counts=np.bincount(all_movies, minlength=len(movies)),
        )
    checkpoint.unlink(missing_ok=True)
    storage.drop_checkpoint(checkpoint.name)
    if not publish:
        context.log.error(
            f"model not published (finite weights: {finite}, beats global mean: {beats_mean}); "
            f"it was saved to {store.url(target)} for inspection and the previous model file is unchanged"
        )
    rmse_text = f"val RMSE {metrics['val_rmse']:.4f}"
    check_results = [
        dg.AssetCheckResult(check_name="weights_finite", passed=finite, severity=dg.AssetCheckSeverity.ERROR,
                            description="all weights finite" if finite else "NaN or infinite weights"),
        dg.AssetCheckResult(check_name="beats_global_mean", passed=beats_mean, severity=dg.AssetCheckSeverity.ERROR,
                            description=f"{rmse_text} vs global mean {metrics['global_mean_rmse']:.4f}",
                            metadata={"val_rmse": metrics["val_rmse"], "baseline_rmse": metrics["global_mean_rmse"]}),
        dg.AssetCheckResult(check_name="beats_bias_only", passed=beats_bias, severity=dg.AssetCheckSeverity.WARN,
                            description=f"{rmse_text} vs bias only {metrics['bias_only_rmse']:.4f}",
                            metadata={"val_rmse": metrics["val_rmse"], "baseline_rmse": metrics["bias_only_rmse"]}),
    ]
    return dg.MaterializeResult(
        check_results=check_results,
        metadata={
            "published": dg.MetadataValue.bool(publish),
            "train_loss": dg.MetadataValue.float(metrics["train_loss"]),
            "val_loss": dg.MetadataValue.float(metrics["val_loss"]),
            "val_rmse": dg.MetadataValue.float(metrics["val_rmse"]),
            "val_mae": dg.MetadataValue.float(metrics["val_mae"]),
            "global_mean_rmse": dg.MetadataValue.float(metrics["global_mean_rmse"]),
            "bias_only_rmse": dg.MetadataValue.float(metrics["bias_only_rmse"]),
            "epochs_run": dg.MetadataValue.int(result.epochs_run),
            "best_epoch": dg.MetadataValue.int(result.best_epoch),
            "stopped_early": dg.MetadataValue.bool(result.stopped_early),
            "resumed_from_epoch": dg.MetadataValue.int(result.resumed_from_epoch),
            "device": dg.MetadataValue.text(str(torch_device)),
            "parameters": dg.MetadataValue.int(result.model.n_parameters),
            "train_seconds": dg.MetadataValue.float(round(result.train_seconds, 3)),
            "duration_seconds": dg.MetadataValue.float(round(time.perf_counter() - started, 3)),
            "ratings_per_second": dg.MetadataValue.float(round(result.ratings_per_second, 1)),
            "file_size_bytes": dg.MetadataValue.int(store.size(target)),
            "path": dg.MetadataValue.path(store.url(target)),
        }
    )


def _ranking_ndcg(model, train, val, n_users: int, n_movies: int) -> float:
    """NDCG@10 of ranking by predicted rating on the validation split (training movies excluded),
    on the same protocol as the ranking model, so ``Recommender.similar_movies`` can use the better factors."""
    state = model.state_dict()
    seen = UserItems.from_pairs(train.users.numpy(), train.movies.numpy(), n_users, n_movies)
    held = HeldOut.from_ratings(val.users.numpy(), val.movies.numpy(), val.ratings.numpy(), n_users, n_movies)
    ranker = factor_ranker(state["user_factors.weight"].cpu().numpy(), state["movie_factors.weight"].cpu().numpy(), seen,
                           movie_bias=state["movie_bias.weight"].cpu().numpy()[:, 0])
    return float(evaluate_rankers({"rating": ranker}, seen, held)["rating"].metrics["ndcg_at_10"])


@dg.asset(deps=[recommendation_model], group_name="training", kinds={"matplotlib"}, owners=OWNERS)
def training_loss_plot(storage: RecsysStorage) -> dg.MaterializeResult:
    """Training and validation loss per epoch (PNG next to the model, shown inline here)."""
    store = storage.store
    with store.read(storage.MODEL) as model_file:
        payload = load_model_file(model_file)
    history = payload["history"]
    best_epoch = min(history, key=lambda h: h["val_loss"])["epoch"] if history else None
    with store.write(storage.LOSS_PLOT) as tmp:
        encoded = base64.b64encode(plot_training_history(history, tmp, best_epoch=best_epoch).read_bytes()).decode()
    return dg.MaterializeResult(
        metadata={
            "plot": dg.MetadataValue.md(f"![Training History](data:image/png;base64,{encoded})"),
            "path": dg.MetadataValue.path(store.url(storage.LOSS_PLOT)),
            "epochs": dg.MetadataValue.int(len(history)),
        }
    )
