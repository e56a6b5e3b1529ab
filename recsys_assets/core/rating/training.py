"""The training loop: mini-batch MSE with sparse updates, validation every epoch, early stopping.

It minimizes ``nn.MSELoss`` over shuffled batches and validates under
``torch.no_grad()`` every epoch (``Epoch i/N``, ``Training Loss``,
``Validation Loss``); what makes it fast and accurate:

* batches are slices of preloaded tensors under a fresh permutation per epoch,
  never samples collated one at a time;
* the default optimizer is :class:`~recsys_assets.core.rating.optim.FusedSGD`:
  per-rating SGD with count-weighted L2, applied a batch at a time to the
  batch's rows only (a compiled Numba kernel on the CPU, Triton on CUDA);
  ``optimizer="adam"`` is plain Adam, as ``SparseAdam`` on sparse
  embeddings with the L2 penalty on the batch's rows in the loss;
* training stops when the validation loss has not improved by ``min_delta``
  for ``patience`` epochs, and the best epoch's weights are restored;
* an epoch that diverges (a training loss more than twice the previous epoch's,
  or non-finite loss or weights) is run again from the previous epoch's weights
  with half the step size, up to ``MAX_BACKOFFS`` times;
* the batch size is capped so that an epoch has at least ``MIN_BATCHES_PER_EPOCH``
  batches (:func:`epoch_batch_size`): a training loss is summed before each
  batch's update, so with one batch per epoch it would lag the update by a whole
  epoch and a backoff could never see its own effect (a small export then
  failed with ``TrainingDivergedError``); per-rating SGD with smaller batches
  is the same update with fewer repeats of a row added up at once;
* a per-epoch checkpoint lets an interrupted training resume where it stopped.
"""

import copy
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from recsys_assets.core.rating.checkpoint import data_fingerprint, read_checkpoint, write_checkpoint
from recsys_assets.core.rating.dataset import MovieRatingDataset
from recsys_assets.core.rating.early_stopping import improves, monitored_loss
from recsys_assets.core.rating.epochs import adam_epoch, evaluate, graphed_runner, sgd_epoch
from recsys_assets.core.rating.implicit_feedback import ImplicitFeedback
from recsys_assets.core.rating.model import BiasedMF
from recsys_assets.core.rating.optim import FusedSGD, GraphedEpoch, WeightedRatings, count_weights
from recsys_assets.core.rating.train_config import TrainConfig

log = logging.getLogger(__name__)
MAX_BACKOFFS = 4  # halvings of the step size after a diverged epoch before training gives up
DIVERGENCE_RATIO = 2.0  # an epoch whose training loss more than doubles the previous one's is diverging
MIN_BATCHES_PER_EPOCH = 8  # small training sets get smaller batches (over 8 x 4,096 ratings: no change)


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainResult:
    model: BiasedMF
    optimizer: torch.optim.Optimizer
    history: list[dict]
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    train_seconds: float
    ratings_per_second: float
    resumed_from_epoch: int = 0
    device: str = "cpu"
    learning_rate_backoffs: list[dict] = field(default_factory=list)  # {"epoch", "learning_rate"} per halving
    final_learning_rate: float = 0.0
    batch_size: int = 0  # the batch size used: config.batch_size capped by epoch_batch_size


def epoch_batch_size(configured: int, n_ratings: int) -> int:
    """``configured``, capped so that ``n_ratings`` make at least ``MIN_BATCHES_PER_EPOCH`` batches."""
    return max(1, min(configured, -(-n_ratings // MIN_BATCHES_PER_EPOCH)))


def _clone_state(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def train_model(
    train: MovieRatingDataset,
    val: MovieRatingDataset,
    n_users: int,
    n_movies: int,
    config: TrainConfig | None = None,
    *,
    device: str | torch.device = "cpu",
    on_epoch: Callable[[dict], None] | None = None,
    checkpoint_path: str | os.PathLike | None = None,
) -> TrainResult:
    """Train a :class:`BiasedMF` and return it with the best validation epoch's weights.

    ``on_epoch`` receives a record per epoch (``epoch``, ``epochs``,
    ``train_loss``, ``val_loss``, ``val_rmse``, ``seconds``, ``elapsed``,
    ``message``), where ``message`` is the epoch's log text.
    ``checkpoint_path``, if given, is written after every epoch and resumed
    from when it matches this data and configuration.
    """
    config = config or TrainConfig()
    config.validate()
    if len(train) == 0:
        raise ValueError("the training split is empty")
    fit = _build_fit(train, val, n_users, n_movies, config, torch.device(device))
    ckpt = Path(checkpoint_path) if checkpoint_path else None
    fingerprint = data_fingerprint(train, val, n_users, n_movies, asdict(config)) if ckpt else ""
    progress = _resume(fit, read_checkpoint(ckpt, fingerprint, fit.device) if ckpt is not None else None)
    start_epoch, started = progress.epoch, time.perf_counter()
    while progress.epoch < config.epochs and not progress.stopped_early:
        record = _epoch(fit, progress, started)
        if record is None:  # diverged: the epoch runs again with half the step size
            continue
        if ckpt is not None:
            ckpt = write_checkpoint(ckpt, fingerprint, _checkpoint_state(fit, progress))  # None: not written
        if on_epoch is not None:
            on_epoch({**record, "message": _epoch_message(record)})
    return _result(fit, progress, start_epoch)


@dataclass
class _Fit:
    """The parts one training works with: the model, its optimizer and the data on the device."""

    model: BiasedMF
    optimizer: torch.optim.Optimizer
    train: MovieRatingDataset  # on the device
    val: MovieRatingDataset
    config: TrainConfig
    device: torch.device
    batch_size: int
    generator: torch.Generator
    global_mean: float
    initial_loss: float  # the training loss before any step (a first epoch above twice it diverged)
    weighted: WeightedRatings | None = None  # SGD: the ratings with their L2 weights
    implicit: ImplicitFeedback | None = None  # SGD with implicit feedback
    graphed: GraphedEpoch | None = None  # SGD on CUDA: the captured epoch runner


@dataclass
class _Progress:
    """What early stopping and the checkpoint carry from one epoch to the next."""

    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    best_val: float = math.inf
    best_epoch: int = 0
    best_state: dict | None = None
    bad_epochs: int = 0
    stopped_early: bool = False
    backoffs: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    trained_ratings: int = 0


def _build_fit(train, val, n_users: int, n_movies: int, config: TrainConfig, device: torch.device) -> _Fit:
    """The seeded model and its optimizer (FusedSGD with its weights and implicit feedback, or SparseAdam)."""
    batch_size = epoch_batch_size(config.batch_size, len(train))
    if batch_size < config.batch_size:
        log.info("batch size %d for %d training ratings (configured %d)", batch_size, len(train), config.batch_size)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    global_mean = float(train.ratings.double().mean())
    sgd = config.optimizer == "sgd"
    model = BiasedMF(
        n_users, n_movies, config.embedding_dim, global_mean=global_mean, init_std=config.init_std, sparse=not sgd
    )
    model.to(device)
    train_dev, val_dev = train.to(device), val.to(device)
    initial_loss = float(((train_dev.ratings.double() - global_mean) ** 2).mean())
    parts = (train_dev, val_dev, config, device, batch_size, generator, global_mean, initial_loss)
    if not sgd:
        optimizer = torch.optim.SparseAdam(list(model.parameters()), lr=config.learning_rate)
        return _Fit(model, optimizer, *parts)
    optimizer = FusedSGD(
        model.parameters(), config.learning_rate, config.reg_factors, config.reg_bias, kernel=config.kernel
    )
    fit = _Fit(model, optimizer, *parts)
    fit.weighted = WeightedRatings(
        train_dev.users,
        train_dev.movies,
        train_dev.ratings,
        w_user=count_weights(train.users, n_users, config.reg_count_exponent).to(device)[train_dev.users],
        w_movie=count_weights(train.movies, n_movies, config.reg_count_exponent).to(device)[train_dev.movies],
    )
    if config.implicit_lr > 0:  # SVD++-style implicit feedback from each user's rated movies
        fit.implicit = optimizer.implicit = ImplicitFeedback(
            train_dev.users, train_dev.movies, n_users, n_movies, config.embedding_dim
        )
    fit.graphed = graphed_runner(model, optimizer, fit.weighted, batch_size, config, device)
    return fit


def _resume(fit: _Fit, saved: dict | None) -> _Progress:
    """The progress of a fresh training, or of the checkpointed one (its weights and RNG states restored)."""
    if saved is None:
        return _Progress()
    fit.model.load_state_dict(saved["model"])
    fit.optimizer.load_state_dict(saved["optimizer"])
    progress = _Progress(
        epoch=saved["epoch"],
        history=list(saved["history"]),
        best_val=saved["best_val"],
        best_epoch=saved["best_epoch"],
        best_state=saved["best_state"],
        bad_epochs=saved["bad_epochs"],
    )
    if fit.implicit is not None:
        fit.implicit.load_state_dict(saved["implicit"])
    torch.set_rng_state(saved["torch_rng"])
    fit.generator.set_state(saved["generator"])
    log.info("resuming training from epoch %d", progress.epoch)
    progress.stopped_early = bool(progress.epoch) and progress.bad_epochs > fit.config.patience
    return progress


def _epoch(fit: _Fit, progress: _Progress, started: float) -> dict | None:
    """Train and validate one epoch: its history record, or None when it diverged and was rolled back."""
    progress.epoch += 1
    fit.model.train()
    t0 = time.perf_counter()
    last_good = _snapshot(fit)
    train_loss = _train_epoch(fit)
    reference = progress.history[-1]["train_loss"] if progress.history else fit.initial_loss
    if not (math.isfinite(train_loss) and train_loss <= DIVERGENCE_RATIO * reference and fit.model.all_finite()):
        _back_off(fit, progress, last_good, train_loss)
        return None
    seconds = time.perf_counter() - t0
    progress.train_seconds += seconds
    progress.trained_ratings += len(fit.train)
    return _validate(fit, progress, train_loss, seconds, started)


def _snapshot(fit: _Fit) -> tuple[dict, dict | None, dict | None]:
    """The weights (and Adam's state, the implicit factors) a diverged epoch is rolled back to."""
    optimizer_state = None if fit.weighted is not None else copy.deepcopy(fit.optimizer.state_dict())
    return _clone_state(fit.model), optimizer_state, fit.implicit.state_dict() if fit.implicit is not None else None


def _train_epoch(fit: _Fit) -> float:
    """One pass over the training ratings; the mean squared error summed before each batch's update."""
    if fit.weighted is not None:
        assert isinstance(fit.optimizer, FusedSGD)
        total_loss = sgd_epoch(fit.model, fit.optimizer, fit.weighted, fit.batch_size, fit.generator, fit.graphed)
        if fit.implicit is not None:  # the implicit factors' once-an-epoch step, scaled with any backoff
            scale = fit.optimizer.param_groups[0]["lr"] / fit.config.learning_rate
            fit.implicit.step(fit.model.user_factors.weight, fit.config.implicit_lr * scale, fit.config.reg_implicit)
    else:
        config = replace(fit.config, batch_size=fit.batch_size)
        total_loss = adam_epoch(fit.model, fit.optimizer, fit.train, config, fit.generator)
    if fit.device.type == "cuda":
        torch.cuda.synchronize(fit.device)
    return float(total_loss) / len(fit.train)


def _back_off(fit: _Fit, progress: _Progress, last_good: tuple, train_loss: float) -> None:
    """A step too large for this data (many repeats of a row in one batch add up): restart the epoch from
    the last good weights with half the step size, a few times at most."""
    epoch, lr = progress.epoch, fit.optimizer.param_groups[0]["lr"]
    if len(progress.backoffs) >= MAX_BACKOFFS:
        raise TrainingDivergedError(
            f"training loss became {train_loss} in epoch {epoch} after {len(progress.backoffs)} halvings of the "
            f"step size (now {lr:g}); lower learning_rate (configured {fit.config.learning_rate}) or batch_size, "
            "or raise regularization"
        )
    model_state, optimizer_state, implicit_state = last_good
    fit.model.load_state_dict(model_state)
    if optimizer_state is not None:
        fit.optimizer.load_state_dict(optimizer_state)
    if fit.implicit is not None and implicit_state is not None:
        fit.implicit.load_state_dict(implicit_state)
    for group in fit.optimizer.param_groups:
        group["lr"] = lr / 2
    if fit.weighted is not None and fit.graphed is not None:  # the captured steps hold the old step size
        fit.graphed = graphed_runner(fit.model, fit.optimizer, fit.weighted, fit.batch_size, fit.config, fit.device)
    progress.backoffs.append({"epoch": epoch, "learning_rate": lr / 2})
    log.warning(
        "epoch %d diverged (training loss %s); restarting it from epoch %d's weights with learning rate %g",
        epoch,
        train_loss,
        epoch - 1,
        lr / 2,
    )
    progress.epoch -= 1


def _validate(fit: _Fit, progress: _Progress, train_loss: float, seconds: float, started: float) -> dict:
    """Score the epoch on the validation split, keep the best weights (early_stopping.py) and record it."""
    config, epoch = fit.config, progress.epoch
    val_loss, val_rmse, val_mae = evaluate(
        fit.model, fit.val, config.eval_batch_size, (config.rating_min, config.rating_max)
    )
    if len(fit.val) and not math.isfinite(val_loss):
        raise TrainingDivergedError(f"validation loss became {val_loss} in epoch {epoch}")
    record = {
        "epoch": epoch,
        "epochs": config.epochs,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "val_rmse": val_rmse,
        "val_mae": val_mae,
        "seconds": seconds,
        "elapsed": time.perf_counter() - started,
    }
    monitored = monitored_loss(record)
    if improves(monitored, progress.best_val, config.min_delta):
        progress.best_val, progress.best_epoch, progress.best_state = monitored, epoch, _clone_state(fit.model)
        progress.bad_epochs = 0
    else:
        progress.bad_epochs += 1
    progress.history.append(record)
    progress.stopped_early = progress.bad_epochs > config.patience
    return record


def _checkpoint_state(fit: _Fit, progress: _Progress) -> dict:
    return {
        "epoch": progress.epoch,
        "model": fit.model.state_dict(),
        "optimizer": fit.optimizer.state_dict(),
        "history": progress.history,
        "best_val": progress.best_val,
        "best_epoch": progress.best_epoch,
        "best_state": progress.best_state,
        "bad_epochs": progress.bad_epochs,
        "torch_rng": torch.get_rng_state(),
        "generator": fit.generator.get_state(),
        "implicit": fit.implicit.state_dict() if fit.implicit is not None else None,
    }


def _epoch_message(record: dict) -> str:
    return (
        f"Epoch {record['epoch']}/{record['epochs']}:\n"
        f"Training Loss: {record['train_loss']:.4f}\n"
        f"Validation Loss: {record['val_loss']:.4f}"
    )


def _result(fit: _Fit, progress: _Progress, start_epoch: int) -> TrainResult:
    """The result with the best epoch's weights restored."""
    if progress.best_state is not None:
        fit.model.load_state_dict(progress.best_state)
    train_seconds = progress.train_seconds
    return TrainResult(
        model=fit.model,
        optimizer=fit.optimizer,
        history=progress.history,
        best_epoch=progress.best_epoch,
        epochs_run=len(progress.history),
        stopped_early=progress.stopped_early,
        train_seconds=train_seconds,
        ratings_per_second=progress.trained_ratings / train_seconds if train_seconds > 0 else 0.0,
        resumed_from_epoch=start_epoch,
        device=str(fit.device),
        learning_rate_backoffs=progress.backoffs,
        final_learning_rate=float(fit.optimizer.param_groups[0]["lr"]),
        batch_size=fit.batch_size,
    )


def refit_on_all(
    train: MovieRatingDataset,
    val: MovieRatingDataset,
    n_users: int,
    n_movies: int,
    config: TrainConfig,
    *,
    epochs: int,
    device: str | torch.device = "cpu",
) -> TrainResult:
    """Train again with the same settings on train + val for ``epochs`` epochs (the count early stopping chose
    on val), so the published model learns from every rating; its held-out figures are the first fit's."""
    both, nothing = train.concat(val), MovieRatingDataset._of(*val[:0])
    fixed = replace(config, epochs=max(epochs, 1), patience=max(epochs, 1) + 1)  # no early stop: a fixed count
    return train_model(both, nothing, n_users, n_movies, fixed, device=device)
