"""The best-epoch rule, written once: the trainer stops and restores weights by it, and the loss plot
(``training_loss_plot``) marks the epoch it picks, replayed from the stored history. No PyTorch.

An epoch counts as an improvement when its monitored loss (the validation loss, or the training loss
when there is no validation split) is below the best so far by more than ``min_delta``; the best epoch
is the last epoch that improved, so a later epoch with a slightly lower loss (by ``min_delta`` or less)
is not the best one.
"""

import math


def monitored_loss(record: dict) -> float:
    """The loss early stopping watches in an epoch's history record: validation, else training loss."""
    val_loss = record["val_loss"]
    return record["train_loss"] if val_loss is None or math.isnan(val_loss) else val_loss


def improves(loss: float, best: float, min_delta: float) -> bool:
    """Whether ``loss`` beats the best loss so far by more than ``min_delta``."""
    return loss < best - min_delta


def best_epoch(history: list[dict], min_delta: float) -> int | None:
    """The epoch the trainer restored for this history (``None`` for an empty history)."""
    best, chosen = math.inf, None
    for record in history:
        loss = monitored_loss(record)
        if improves(loss, best, min_delta):
            best, chosen = loss, record["epoch"]
    return chosen
