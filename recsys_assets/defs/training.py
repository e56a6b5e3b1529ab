"""Training assets: the recommendation model file and its loss plot."""

import base64
import time
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import pandas as pd
from pydantic import Field

from recsys_assets.core.ids import mappings_from_table
from recsys_assets.core.locks import exclusive_lock
from recsys_assets.core.plots import plot_training_history
from recsys_assets.core.rating import early_stopping
from recsys_assets.core.rating.model_file import load_model_file
from recsys_assets.core.rating.train_config import TrainConfig
from recsys_assets.defs.executors import TRAINING_OP_TAGS
from recsys_assets.defs.owners import OWNERS
from recsys_assets.defs.publishing import PromotionConfig, load_published, log_plan, published_sample
from recsys_assets.defs.resources import DeviceResource, RecsysStorage
from recsys_assets.defs.training_release import TrainingRun, publish

if TYPE_CHECKING:  # PyTorch is imported by the training step itself, not by every process that loads the defs
    from recsys_assets.core.rating.report import ModelReport
    from recsys_assets.core.rating.training import TrainResult

_DEFAULTS = TrainConfig()


class RecommendationModelConfig(PromotionConfig):
    """Hyper-parameters of the rating model and its training loop.

    The defaults (per-rating SGD with implicit feedback, count-weighted L2, early stopping,
    a refit on train + val) are tuned for accuracy and speed (see the README); plain Adam is optimizer='adam' with
    batch_size=1024, learning_rate=0.001, epochs=10, reg_factors=0, reg_bias=0.
    """

    optimizer: str = Field(
        default=_DEFAULTS.optimizer,
        description="'sgd': fused per-rating SGD (fast, tuned default); 'adam': SparseAdam on the sparse embeddings.",
    )
    embedding_dim: int = Field(default=_DEFAULTS.embedding_dim, description="Size of the user and movie embeddings.")
    batch_size: int = Field(default=_DEFAULTS.batch_size, description="Ratings per optimizer step.")
    learning_rate: float = Field(
        default=_DEFAULTS.learning_rate, description="Step size of the optimizer (SGD or SparseAdam)."
    )
    epochs: int = Field(default=_DEFAULTS.epochs, description="Maximum number of epochs.")
    reg_factors: float = Field(default=_DEFAULTS.reg_factors, description="L2 penalty on the batch's embedding rows.")
    reg_bias: float = Field(default=_DEFAULTS.reg_bias, description="L2 penalty on the batch's user and movie biases.")
    reg_count_exponent: float = Field(
        default=_DEFAULTS.reg_count_exponent,
        description="sgd: rows rated n times get L2 weight (mean_n / n) ** this; 0 = uniform.",
    )
    implicit_lr: float = Field(
        default=_DEFAULTS.implicit_lr,
        description="sgd: step size of the implicit factors of the movies each user rated (SVD++-style implicit "
        "feedback, updated once per epoch); 0 = plain biased matrix factorization.",
    )
    reg_implicit: float = Field(default=_DEFAULTS.reg_implicit, description="sgd: L2 penalty on the implicit factors.")
    init_std: float = Field(default=_DEFAULTS.init_std, description="Standard deviation of the initial embeddings.")
    patience: int = Field(
        default=_DEFAULTS.patience, description="Epochs without validation improvement before stopping."
    )
    min_delta: float = Field(
        default=_DEFAULTS.min_delta, description="Smallest validation-loss decrease that counts as improvement."
    )
    seed: int = Field(default=_DEFAULTS.seed, description="Seed of initialization and shuffling.")
    refit: bool = Field(
        default=_DEFAULTS.refit,
        description="After early stopping chose the epoch count on the validation split, train again on training + "
        "validation ratings for that many epochs and publish that fit (the reported figures stay the first fit's).",
    )

    def to_train_config(self, **environment) -> TrainConfig:
        """The core's config; ``environment`` adds the device resource's settings (``kernel``)."""
        return TrainConfig(**self.model_dump(exclude=PromotionConfig.field_names()), **environment)


MODEL_CHECKS = [
    dg.AssetCheckSpec(
        "weights_finite", asset="recommendation_model", blocking=True, description="Every model weight is finite."
    ),
    dg.AssetCheckSpec(
        "beats_global_mean",
        asset="recommendation_model",
        blocking=True,
        description="Validation RMSE is below the global-mean baseline's.",
    ),
    dg.AssetCheckSpec(
        "beats_bias_only",
        asset="recommendation_model",
        blocking=False,
        description="Validation RMSE is below the bias-only baseline's (warning).",
    ),
    dg.AssetCheckSpec(
        "not_worse_than_published",
        asset="recommendation_model",
        blocking=True,
        description="The data did not shrink, and on validation ratings the published model never "
        "trained on, the new model's RMSE is within the tolerance of the published model's.",
    ),
]


@dg.asset(
    group_name="training",
    kinds={"pytorch"},
    owners=OWNERS,
    check_specs=MODEL_CHECKS,
    pool="recsys_training",
    op_tags=TRAINING_OP_TAGS,
)
def recommendation_model(
    context: dg.AssetExecutionContext,
    config: RecommendationModelConfig,
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
    policy = config.policy()
    from recsys_assets.core.rating.dataset import MovieRatingDataset  # PyTorch: imported by this step only
    from recsys_assets.core.recommender import Recommender
    from recsys_assets.core.release.lineage import plan_against

    users, movies = mappings_from_table(user_movie_mappings)
    current = load_published(context, storage, storage.MODEL, lambda path: Recommender.load(path, find_ranking=False))
    plan, found = plan_against(
        train_ratings, val_ratings, users, movies, current, published_sample=published_sample(storage, storage.MODEL)
    )
    log_plan(context, plan, found)
    train, val = (MovieRatingDataset.from_frame(f, users, movies) for f in (plan.train, plan.val))
    context.log.info(
        f"training on {torch_device}: {len(train):,} ratings, {len(val):,} for validation, "
        f"{len(users):,} users, {len(movies):,} movies"
    )
    checkpoint = storage.checkpoint_dir / "recommendation_model.training.pt"
    started = time.perf_counter()
    with exclusive_lock(storage.lock_dir / "recommendation_model.lock", "recommendation_model"):
        result = _train(
            context,
            storage,
            (train, val),
            (users, movies),
            train_config,
            torch_device=torch_device,
            checkpoint=checkpoint,
        )
        run = _judged(
            context,
            result,
            plan,
            (users, movies),
            (train, val),
            train_config,
            torch_device=torch_device,
            current=current,
            policy=policy,
            found=found,
            exported=(train_ratings, val_ratings),
            checkpoint=checkpoint,
            started=started,
        )
        return publish(context, storage, run, keep=config.keep_versions)


def _train(context, storage: RecsysStorage, data, mappings, train_config: TrainConfig, *, torch_device, checkpoint):
    """Train on the plan's splits, resuming from (and mirroring) the per-epoch checkpoint, logging each epoch."""
    from recsys_assets.core.rating.report import epoch_summary, training_summary
    from recsys_assets.core.rating.training import train_model

    if storage.restore_checkpoints():
        context.log.info(f"fetched the checkpoints mirrored in {storage.store.url(storage.CHECKPOINTS)}")

    def on_epoch(record: dict) -> None:
        context.log.info(f"{record['message']}\n{epoch_summary(record)}")
        storage.mirror_checkpoints()  # a remote store: mirror the epoch's checkpoint for a rerun elsewhere

    (train, val), (users, movies) = data, mappings
    result = train_model(
        train,
        val,
        len(users),
        len(movies),
        train_config,
        device=torch_device,
        on_epoch=on_epoch,
        checkpoint_path=checkpoint,
    )
    context.log.info(training_summary(result, train_config))
    return result


def _judged(
    context,
    result: "TrainResult",
    plan,
    mappings,
    data,
    train_config: TrainConfig,
    *,
    torch_device,
    current,
    policy,
    found,
    exported: tuple[pd.DataFrame, pd.DataFrame],
    checkpoint: Path,
    started: float,
) -> "TrainingRun":
    """The report (metrics, baselines, seen index), the fit to publish (the refit, else the held-out fit) and
    the promotion decision on it. ``exported``: the train and val frames (every rating, the seen index)."""
    from recsys_assets.core.rating.dataset import MovieRatingDataset
    from recsys_assets.core.rating.report import build_report
    from recsys_assets.core.release.decision import DataSize, Promotion, decide
    from recsys_assets.core.release.gates import rating_facts, verdict
    from recsys_assets.core.release.rating_evidence import published_size, rating_evidence_list

    (users, movies), (train, val) = mappings, data
    everything = pd.concat(list(exported), ignore_index=True)
    report = build_report(
        result,
        train,
        val,
        n_users=len(users),
        n_movies=len(movies),
        rating_range=(train_config.rating_min, train_config.rating_max),
        seen=(users.encode(everything["user_id"]), movies.encode(everything["movie_id"])),
    )
    refit_val = MovieRatingDataset.from_frame(plan.refit_val, users, movies)
    published = _refit(context, result, report, train, refit_val, train_config=train_config, torch_device=torch_device)
    size = DataSize(*report.data_size().values())  # users, movies, ratings
    if current is None:
        promotion = decide(size, None, [], policy)
    elif not report.weights_finite:
        promotion = Promotion(True, notes=["not compared: the weights are not finite"])
    else:
        evidence = rating_evidence_list(
            result.model, published.model.state_dict(), val, current, mappings=(users, movies), found=found
        )
        promotion = decide(size, published_size(current), evidence, policy, lineage=found)
    return TrainingRun(
        result=result,
        report=report,
        users=users,
        movies=movies,
        config=train_config,
        checkpoint=checkpoint,
        started=started,
        published=published,
        learned_ratings=len(train) + (len(refit_val) if published is not result else 0),
        heldback=plan.heldback,
        fingerprint=plan.fingerprint,
        verdict=verdict(rating_facts(report.metrics, report.weights_finite), promotion),
        lineage=found.kind,
    )


def _refit(context, result: "TrainResult", report: "ModelReport", train, refit_val, *, train_config, torch_device):
    """The fit to publish: the refit on training + validation minus the held-back ratings (``refit``), else
    the held-out fit. Done before the promotion decision, which scores the weights that would go live."""
    from recsys_assets.core.rating.training import refit_on_all

    if not (train_config.refit and report.weights_finite and report.beats_global_mean):
        return result
    started = time.perf_counter()
    n_users, n_movies = len(report.seen_indptr) - 1, len(report.movie_counts)
    published = refit_on_all(
        train, refit_val, n_users, n_movies, train_config, epochs=result.best_epoch, device=torch_device
    )
    context.log.info(
        f"refitted on training + validation less the held-back ratings ({len(train) + len(refit_val):,} ratings) "
        f"for {result.best_epoch} epochs in {time.perf_counter() - started:.1f}s; the reported figures are the "
        "held-out fit's"
    )
    if not published.model.all_finite():  # keep the checked fit rather than publish a broken one
        context.log.warning("the refit produced non-finite weights; publishing the held-out fit instead")
        return result
    return published


@dg.asset(deps=[recommendation_model], group_name="training", kinds={"matplotlib"}, owners=OWNERS)
def training_loss_plot(storage: RecsysStorage) -> dg.MaterializeResult:
    """Training and validation loss per epoch (PNG next to the model, shown inline here)."""
    from recsys_assets.core.release import live
    from recsys_assets.core.release.registry import STAGED
    from recsys_assets.core.sparkline import loss_markdown

    store, staged = storage.store, f"{STAGED}/{storage.MODEL}"  # staged: a model waiting for its ranking model
    with store.read(staged if store.exists(staged) else live.resolve(store, storage.MODEL)) as model_file:
        payload = load_model_file(model_file)
    history = payload["history"]
    best_epoch = early_stopping.best_epoch(history, payload["config"].get("min_delta", _DEFAULTS.min_delta))
    with store.write(storage.LOSS_PLOT) as tmp:
        encoded = base64.b64encode(plot_training_history(history, tmp, best_epoch=best_epoch).read_bytes()).decode()
    return dg.MaterializeResult(
        metadata={
            "loss": dg.MetadataValue.md(loss_markdown(history, best_epoch)),  # small: shown on the page itself
            "plot": dg.MetadataValue.md(f"![Training History](data:image/png;base64,{encoded})"),
            "path": dg.MetadataValue.path(store.url(storage.LOSS_PLOT)),
            "epochs": dg.MetadataValue.int(len(history)),
        }
    )
