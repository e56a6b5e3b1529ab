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

from recsys_assets.core.rating import numba_sgd
from recsys_assets.core.rating.checkpoint import data_fingerprint, read_checkpoint, write_checkpoint
from recsys_assets.core.rating.dataset import MovieRatingDataset
from recsys_assets.core.rating.early_stopping import improves
from recsys_assets.core.rating.implicit_feedback import ImplicitFeedback
from recsys_assets.core.rating.model import BiasedMF
from recsys_assets.core.rating.numba_sgd import epoch_order
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


def evaluate(
    model: nn.Module, data: MovieRatingDataset, batch_size: int = 1 << 16, clamp=None
) -> tuple[float, float, float]:
    """(MSE of the raw predictions, RMSE and MAE of the clamped predictions)."""
    model.eval()
    if len(data) == 0:
        return float("nan"), float("nan"), float("nan")
    n = len(data)
    if isinstance(model, BiasedMF) and numba_sgd.available(model.user_factors.weight) and not data.users.is_cuda:
        bounds = (-math.inf, math.inf) if clamp is None else clamp
        sq, sq_clamped, abs_clamped = numba_sgd.squared_errors(model, data.users, data.movies, data.ratings, bounds)
        return sq / n, math.sqrt(sq_clamped / n), abs_clamped / n
    sq = sq_clamped = abs_clamped = 0.0
    with torch.no_grad():
        for users, movies, ratings in data.batches(batch_size):
            pred = model(users, movies)
            sq += float(((pred - ratings) ** 2).sum())
            if clamp is not None:
                pred = pred.clamp(*clamp)
            sq_clamped += float(((pred - ratings) ** 2).sum())
            abs_clamped += float((pred - ratings).abs().sum())
    return sq / n, math.sqrt(sq_clamped / n), abs_clamped / n


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
    device = torch.device(device)
    batch_size = epoch_batch_size(config.batch_size, len(train))
    if batch_size < config.batch_size:
        log.info("batch size %d for %d training ratings (configured %d)", batch_size, len(train), config.batch_size)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    global_mean = float(train.ratings.double().mean())
    sgd = config.optimizer == "sgd"
    implicit: ImplicitFeedback | None = None
    model = BiasedMF(
        n_users, n_movies, config.embedding_dim, global_mean=global_mean, init_std=config.init_std, sparse=not sgd
    )
    model.to(device)
    train_dev, val_dev = train.to(device), val.to(device)
    if sgd:
        optimizer = FusedSGD(
            model.parameters(), config.learning_rate, config.reg_factors, config.reg_bias, kernel=config.kernel
        )
        weighted = WeightedRatings(
            train_dev.users,
            train_dev.movies,
            train_dev.ratings,
            w_user=count_weights(train.users, n_users, config.reg_count_exponent).to(device)[train_dev.users],
            w_movie=count_weights(train.movies, n_movies, config.reg_count_exponent).to(device)[train_dev.movies],
        )
        if config.implicit_lr > 0:  # SVD++-style implicit feedback from each user's rated movies
            implicit = optimizer.implicit = ImplicitFeedback(
                train_dev.users, train_dev.movies, n_users, n_movies, config.embedding_dim
            )
        graphed = _graphed_runner(model, optimizer, weighted, batch_size, config, device)
    else:
        optimizer = torch.optim.SparseAdam(list(model.parameters()), lr=config.learning_rate)
    clamp = (config.rating_min, config.rating_max)

    history: list[dict] = []
    best_val, best_epoch, best_state, bad_epochs, start_epoch = math.inf, 0, None, 0, 0
    ckpt = Path(checkpoint_path) if checkpoint_path else None
    fingerprint = data_fingerprint(train, val, n_users, n_movies, asdict(config)) if ckpt else ""
    saved = read_checkpoint(ckpt, fingerprint, device) if ckpt is not None else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        history = list(saved["history"])
        best_val, best_epoch = saved["best_val"], saved["best_epoch"]
        best_state, bad_epochs = saved["best_state"], saved["bad_epochs"]
        start_epoch = saved["epoch"]
        if implicit is not None:
            implicit.load_state_dict(saved["implicit"])
        torch.set_rng_state(saved["torch_rng"])
        generator.set_state(saved["generator"])
        log.info("resuming training from epoch %d", start_epoch)

    started = time.perf_counter()
    train_seconds = 0.0
    trained_ratings = 0
    stopped_early = False
    if start_epoch and bad_epochs > config.patience:
        stopped_early = True
    epoch = start_epoch
    backoffs: list[dict] = []
    initial_loss = float(((train_dev.ratings.double() - global_mean) ** 2).mean())  # the loss before any step
    while epoch < config.epochs and not stopped_early:
        epoch += 1
        model.train()
        t0 = time.perf_counter()
        last_good = _clone_state(model), (None if sgd else copy.deepcopy(optimizer.state_dict()))
        implicit_good = implicit.state_dict() if implicit is not None else None
        if sgd:
            total_loss = _sgd_epoch(model, optimizer, weighted, batch_size, generator, graphed)
            if implicit is not None:  # the implicit factors' once-an-epoch step, scaled with any backoff
                scale = optimizer.param_groups[0]["lr"] / config.learning_rate
                implicit.step(model.user_factors.weight, config.implicit_lr * scale, config.reg_implicit)
        else:
            total_loss = _adam_epoch(model, optimizer, train_dev, replace(config, batch_size=batch_size), generator)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_loss = float(total_loss) / len(train_dev)
        reference = history[-1]["train_loss"] if history else initial_loss
        if not (math.isfinite(train_loss) and train_loss <= DIVERGENCE_RATIO * reference and model.all_finite()):
            # a step too large for this data (many repeats of a row in one batch add up): restart the
            # epoch from the last good weights with half the step size, a few times at most
            lr = optimizer.param_groups[0]["lr"]
            if len(backoffs) >= MAX_BACKOFFS:
                raise TrainingDivergedError(
                    f"training loss became {train_loss} in epoch {epoch} after {len(backoffs)} halvings of the "
                    f"step size (now {lr:g}); lower learning_rate (configured {config.learning_rate}) or batch_size, "
                    "or raise regularization"
                )
            model.load_state_dict(last_good[0])
            if last_good[1] is not None:
                optimizer.load_state_dict(last_good[1])
            if implicit is not None and implicit_good is not None:
                implicit.load_state_dict(implicit_good)
            for group in optimizer.param_groups:
                group["lr"] = lr / 2
            if sgd and graphed is not None:  # the captured steps hold the old step size
                graphed = _graphed_runner(model, optimizer, weighted, batch_size, config, device)
            backoffs.append({"epoch": epoch, "learning_rate": lr / 2})
            log.warning(
                "epoch %d diverged (training loss %s); restarting it from epoch %d's weights with learning rate %g",
                epoch,
                train_loss,
                epoch - 1,
                lr / 2,
            )
            epoch -= 1
            continue
        seconds = time.perf_counter() - t0
        train_seconds += seconds
        trained_ratings += len(train_dev)
        val_loss, val_rmse, val_mae = evaluate(model, val_dev, config.eval_batch_size, clamp)
        if len(val_dev) and not math.isfinite(val_loss):
            raise TrainingDivergedError(f"validation loss became {val_loss} in epoch {epoch}")
        monitored = val_loss if len(val_dev) else train_loss
        if improves(monitored, best_val, config.min_delta):
            best_val, best_epoch, best_state, bad_epochs = monitored, epoch, _clone_state(model), 0
        else:
            bad_epochs += 1
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
        history.append(record)
        if bad_epochs > config.patience:
            stopped_early = True
        if ckpt is not None:
            write_checkpoint(
                ckpt,
                fingerprint,
                {
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "history": history,
                    "best_val": best_val,
                    "best_epoch": best_epoch,
                    "best_state": best_state,
                    "bad_epochs": bad_epochs,
                    "torch_rng": torch.get_rng_state(),
                    "generator": generator.get_state(),
                    "implicit": implicit.state_dict() if implicit is not None else None,
                },
            )
        if on_epoch is not None:
            on_epoch(
                {
                    **record,
                    "message": (
                        f"Epoch {epoch}/{config.epochs}:\n"
                        f"Training Loss: {train_loss:.4f}\n"
                        f"Validation Loss: {val_loss:.4f}"
                    ),
                }
            )

    if best_state is not None:
        model.load_state_dict(best_state)
    epochs_run = len(history)
    return TrainResult(
        model=model,
        optimizer=optimizer,
        history=history,
        best_epoch=best_epoch,
        epochs_run=epochs_run,
        stopped_early=stopped_early,
        train_seconds=train_seconds,
        ratings_per_second=trained_ratings / train_seconds if train_seconds > 0 else 0.0,
        resumed_from_epoch=start_epoch,
        device=str(device),
        learning_rate_backoffs=backoffs,
        final_learning_rate=float(optimizer.param_groups[0]["lr"]),
        batch_size=batch_size,
    )


def _sgd_epoch(model, optimizer: FusedSGD, data: WeightedRatings, batch_size: int, generator, graphed=None):
    """One shuffled pass of fused per-rating SGD; returns the summed squared error (a tensor)."""
    perm = epoch_order(len(data), generator).to(data.ratings.device)
    if graphed is not None:
        return graphed.run(optimizer.prepare_epoch(perm, data, float(model.global_mean)))
    return optimizer.fit_epoch(model, perm, data, batch_size)


def _graphed_runner(model, optimizer, data: WeightedRatings, batch_size: int, config: TrainConfig, device):
    """A CUDA-graph epoch runner when training on CUDA with enough data for a window, else None."""
    if device.type != "cuda" or not config.cuda_graphs:
        return None
    window = max(1, min(64, len(data) // batch_size))
    if len(data) < batch_size * window or window < 4:
        return None
    try:
        perm = torch.arange(len(data), device=device)
        template = optimizer.prepare_epoch(perm, data, float(model.global_mean))
        return GraphedEpoch(optimizer, model, template, batch_size, window)
    except Exception as exc:  # graphs are an optimization: fall back to eager steps
        log.warning("CUDA graph capture failed (%s); training with eager steps", exc)
        return None


def _adam_epoch(model, optimizer, data: MovieRatingDataset, config: TrainConfig, generator) -> torch.Tensor:
    """One Adam epoch: MSELoss, backward, (Sparse)Adam step, over shuffled batches."""
    criterion = nn.MSELoss()
    total = torch.zeros((), device=data.ratings.device)
    for users, movies, ratings in data.batches(config.batch_size, shuffle=True, generator=generator):
        pred = model(users, movies)
        loss = criterion(pred, ratings)
        objective = loss
        if config.reg_factors or config.reg_bias:
            objective = loss + model.penalty(users, movies, config.reg_factors, config.reg_bias)
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        optimizer.step()
        total += loss.detach() * len(ratings)
    return total


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
