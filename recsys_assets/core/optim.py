"""``FusedSGD``: per-rating SGD for biased MF, applied a batch at a time to the batch's rows only.

This is the update of Funk/Koren SVD (and Surprise's ``SVD``) vectorised over a
batch: for each rating, with error ``e = prediction - rating``::

    b_u -= lr * (e + reg_bias * w_u * b_u)
    b_i -= lr * (e + reg_bias * w_i * b_i)
    p_u -= lr * (e * q_i + reg_factors * w_u * p_u)
    q_i -= lr * (e * p_u + reg_factors * w_i * q_i)

applied with ``index_add_`` so that only the rows in the batch are read and
written (repeated rows in a batch add up, as in Hogwild SGD); no autograd, no
dense gradient, no per-row optimizer state.  ``w`` is a per-row weight
``(mean_count / count) ** reg_count_exponent`` that regularizes rarely rated
users and movies more, which keeps their factors near zero until the data
supports them.
"""

import torch
from torch.optim import Optimizer


class FusedSGD(Optimizer):
    """Holds the hyper-parameters (so ``state_dict`` records them); :meth:`fit_batch` updates."""

    def __init__(self, params, lr: float = 0.01, reg_factors: float = 0.1, reg_bias: float = 0.2):
        if lr <= 0:
            raise ValueError(f"lr must be positive, got {lr}")
        super().__init__(params, {"lr": lr, "reg_factors": reg_factors, "reg_bias": reg_bias})

    def step(self, closure=None):  # pragma: no cover - the API is fit_batch
        raise RuntimeError("FusedSGD updates through fit_batch(model, users, movies, ratings, w_user, w_movie)")

    @torch.no_grad()
    def fit_batch(self, model, users, movies, ratings, w_user, w_movie) -> torch.Tensor:
        """One update from a batch; returns the batch's summed squared error before the update."""
        group = self.param_groups[0]
        lr, reg_f, reg_b = group["lr"], group["reg_factors"], group["reg_bias"]
        P = model.user_factors.weight
        Q = model.movie_factors.weight
        bu = model.user_bias.weight.view(-1)
        bi = model.movie_bias.weight.view(-1)
        pu = P.index_select(0, users)
        qi = Q.index_select(0, movies)
        bu_u = bu.index_select(0, users)
        bi_i = bi.index_select(0, movies)
        err = (pu * qi).sum(1).add_(bu_u).add_(bi_i).add_(model.global_mean).sub_(ratings)
        sq = err.square().sum()
        bu.index_add_(0, users, torch.addcmul(err, bu_u, w_user, value=reg_b), alpha=-lr)
        bi.index_add_(0, movies, torch.addcmul(err, bi_i, w_movie, value=reg_b), alpha=-lr)
        neg = err.mul_(-lr).unsqueeze(1)
        shrink_u = w_user.mul(-lr * reg_f).unsqueeze(1)
        shrink_i = w_movie.mul(-lr * reg_f).unsqueeze(1)
        P.index_add_(0, users, torch.addcmul(pu * shrink_u, neg, qi))
        Q.index_add_(0, movies, torch.addcmul(qi * shrink_i, neg, pu))
        return sq


def count_weights(index: torch.Tensor, size: int, exponent: float) -> torch.Tensor:
    """Per-row regularization weight ``(mean_count / count) ** exponent`` (counts clamped at 1)."""
    counts = torch.bincount(index, minlength=size).clamp(min=1).to(torch.float32)
    return (counts.mean() / counts).pow(exponent)
