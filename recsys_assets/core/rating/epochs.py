"""One training epoch, by optimizer: fused per-rating SGD (eagerly, or as a captured CUDA graph) and Adam.

The loop around them (:mod:`~recsys_assets.core.rating.training`) validates, stops early, backs off and
checkpoints; each function here runs one shuffled pass and returns the summed squared error as a tensor;
:func:`evaluate` scores a model on a split.
"""

import logging
import math

import torch
from torch import nn

from recsys_assets.core.rating import numba_sgd
from recsys_assets.core.rating.dataset import MovieRatingDataset
from recsys_assets.core.rating.model import BiasedMF
from recsys_assets.core.rating.numba_sgd import epoch_order
from recsys_assets.core.rating.optim import FusedSGD, GraphedEpoch, WeightedRatings
from recsys_assets.core.rating.train_config import TrainConfig

log = logging.getLogger(__name__)


def sgd_epoch(model, optimizer: FusedSGD, data: WeightedRatings, batch_size: int, generator, graphed=None):
    """One shuffled pass of fused per-rating SGD; returns the summed squared error (a tensor)."""
    perm = epoch_order(len(data), generator).to(data.ratings.device)
    if graphed is not None:
        return graphed.run(optimizer.prepare_epoch(perm, data, float(model.global_mean)))
    return optimizer.fit_epoch(model, perm, data, batch_size)


def graphed_runner(model, optimizer, data: WeightedRatings, batch_size: int, config: TrainConfig, device):
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


def adam_epoch(model, optimizer, data: MovieRatingDataset, config: TrainConfig, generator) -> torch.Tensor:
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
