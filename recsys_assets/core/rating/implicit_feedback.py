"""Implicit feedback for the rating model: what a user chose to rate says something about their taste.

SVD++ (Koren, 2008) adds to each user's factors the scaled sum of an "implicit" factor
``y_j`` of every movie ``j`` the user rated, whatever the rating::

    user vector = p_u + |N(u)| ** -0.5 * sum(y_j for j in N(u))        (the second term is z_u)

Plain SVD++ updates every ``y_j`` of ``N(u)`` after each rating, which costs ``|N(u)|`` times a
plain SGD step (Surprise's ``SVDpp`` is about 20x slower than its ``SVD``). Here the ``y`` update is
lagged by an epoch: the epoch's SGD steps use the ``z_u`` computed at its start and add up each
user's gradient ``g_u = sum(e * q_i)``; after the epoch one sparse product applies
``y_j += lr_y * (sum over raters u of |N(u)| ** -0.5 * g_u - reg * y_j)`` and ``z`` is recomputed.
That costs about two passes over the ratings per epoch, on any device, and keeps the per-rating
step (Numba, PyTorch or CUDA) one small change away from plain biased MF.

The model the trainer updates holds the *effective* user factors ``p_u + z_u``, so evaluation,
checkpoints and the published :class:`~recsys_assets.core.rating.model.BiasedMF` need nothing new: for the
users and movies it was trained on, the published model predicts exactly what SVD++ predicts. The
SGD step regularizes ``p_u`` alone (the effective row minus ``z_u``), as SVD++ does.

``N(u)`` is the user's training ratings only: a validation rating's movie is never part of it.
"""

import numpy as np
import torch

from recsys_assets.core.rating import numba_sgd


class ImplicitFeedback:
    """The implicit factors ``y``, the per-user sums ``z`` and the epoch's user gradients ``g``."""

    def __init__(
        self, users: torch.Tensor, movies: torch.Tensor, n_users: int, n_movies: int, dim: int, *, compiled=None
    ):
        """``compiled``: the Numba step on the CPU (default: when available), else two sparse products."""
        device = users.device
        counts = torch.bincount(users, minlength=n_users).to(torch.float32)
        scale = counts.clamp(min=1).rsqrt()
        self.y = torch.zeros(n_movies, dim, device=device)
        self.z = torch.zeros(n_users, dim, device=device)
        self.g = torch.zeros(n_users, dim, device=device)  # the epoch's sum of e * q_i per user
        self.compiled = numba_sgd.available(self.y) if compiled is None else compiled
        if self.compiled:  # the rated pairs grouped by movie and by user, for one compiled call per epoch
            self.scale = scale.numpy()
            self.by_movie = _grouped(movies.numpy(), users.numpy(), n_movies)
            self.by_user = _grouped(users.numpy(), movies.numpy(), n_users)
        else:  # rated[u, j] = |N(u)| ** -0.5 for every rated pair: z = rated @ y, y's gradient = rated.T @ g
            pairs = torch.stack([users, movies])
            self.rated = torch.sparse_coo_tensor(pairs, scale[users], (n_users, n_movies), check_invariants=True)
            self.rated = self.rated.coalesce()
            self.rated_t = self.rated.t().coalesce()

    def step(self, user_factors: torch.Tensor, lr: float, reg: float) -> None:
        """Apply the epoch's implicit-factor update, move the effective user factors by the change in
        ``z`` (in place), and clear ``g`` for the next epoch.  The SGD step's error is
        ``prediction - rating``, so ``g`` is the gradient and ``y`` moves against it."""
        with torch.no_grad():
            if self.compiled:
                numba_sgd.implicit_step(self, user_factors, lr, reg)
                return
            self.y.add_(torch.sparse.mm(self.rated_t, self.g).add_(self.y, alpha=reg), alpha=-lr)
            z = torch.sparse.mm(self.rated, self.y)
            user_factors.add_(z - self.z)
            self.z.copy_(z)
            self.g.zero_()

    def state_dict(self) -> dict:
        return {"y": self.y.clone(), "z": self.z.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.y.copy_(state["y"])
        self.z.copy_(state["z"])
        self.g.zero_()


def _grouped(keys: np.ndarray, values: np.ndarray, n_keys: int) -> tuple[np.ndarray, np.ndarray]:
    """(indptr, values sorted by key): the CSR layout of the pairs grouped by ``keys``."""
    order = np.argsort(keys, kind="stable")
    indptr = np.zeros(n_keys + 1, np.int64)
    np.cumsum(np.bincount(keys, minlength=n_keys), out=indptr[1:])
    return indptr, values[order].astype(np.int32)
