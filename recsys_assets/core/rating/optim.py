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

On the CPU, :meth:`FusedSGD.fit_epoch` runs a whole epoch in one compiled call
(``core/rating/numba_sgd.py``) when Numba is installed.  On CUDA, :class:`GraphedEpoch` records a window of steps once as a CUDA graph
and replays it, so a step costs one graph launch share instead of about twenty
kernel launches from Python.
"""

from dataclasses import dataclass

import torch
from torch.optim import Optimizer

from recsys_assets.core.rating.kernels import check_kernel


@dataclass
class WeightedRatings:
    """The training ratings as index tensors, with a per-rating regularization weight for each side.

    ``w_user``/``w_movie`` are :func:`count_weights` of the rating's user and movie."""

    users: torch.Tensor
    movies: torch.Tensor
    ratings: torch.Tensor
    w_user: torch.Tensor
    w_movie: torch.Tensor

    def __len__(self) -> int:
        return len(self.ratings)


@dataclass
class EpochBatches:
    """One epoch's shuffled inputs, with per-rating terms precomputed once for the epoch."""

    users: torch.Tensor
    movies: torch.Tensor
    residuals: torch.Tensor  # rating - global mean
    shrink_user: torch.Tensor  # -lr * reg_factors * w_u, shape (n, 1)
    shrink_movie: torch.Tensor
    bias_reg_user: torch.Tensor  # reg_bias * w_u
    bias_reg_movie: torch.Tensor

    def __len__(self) -> int:
        return len(self.users)

    def fields(self) -> tuple[torch.Tensor, ...]:
        return (
            self.users,
            self.movies,
            self.residuals,
            self.shrink_user,
            self.shrink_movie,
            self.bias_reg_user,
            self.bias_reg_movie,
        )

    def __getitem__(self, rows: slice) -> "EpochBatches":
        """The batch of rows ``rows`` (views, no copies)."""
        return EpochBatches(*(f[rows] for f in self.fields()))

    def clone(self) -> "EpochBatches":
        return EpochBatches(*(f.clone() for f in self.fields()))

    def copy_(self, other: "EpochBatches") -> None:
        """Overwrite these tensors in place with ``other``'s (same shapes)."""
        for mine, theirs in zip(self.fields(), other.fields()):
            mine.copy_(theirs)


class FusedSGD(Optimizer):
    """Holds the hyper-parameters (so ``state_dict`` records them) and applies batch updates."""

    def __init__(self, params, lr: float = 0.01, reg_factors: float = 0.1, reg_bias: float = 0.2, kernel: str = "auto"):
        if lr <= 0:
            raise ValueError(f"lr must be positive, got {lr}")
        check_kernel(kernel)
        super().__init__(params, {"lr": lr, "reg_factors": reg_factors, "reg_bias": reg_bias})
        # "auto": one fused kernel per step: on CUDA with Triton installed (core/rating/triton_sgd.py), on the
        # CPU with Numba installed (core/rating/numba_sgd.py); "eager": the PyTorch operations below
        self.kernel = kernel
        # implicit feedback (core/rating/implicit_feedback.py), set by the trainer: the user table holds p_u + z_u
        self.implicit = None

    def step(self, closure=None):  # pragma: no cover - the API is fit_batch / prepare_epoch
        raise RuntimeError("FusedSGD updates through fit_batch(...) or prepare_epoch(...) + fit_slice(...)")

    @property
    def _hyper(self):
        g = self.param_groups[0]
        return g["lr"], g["reg_factors"], g["reg_bias"]

    def prepare_epoch(self, perm: torch.Tensor, data: WeightedRatings, global_mean: float) -> EpochBatches:
        """Gather an epoch's inputs in ``perm`` order and precompute the per-rating terms."""
        lr, reg_f, reg_b = self._hyper
        wu = data.w_user.index_select(0, perm)
        wi = data.w_movie.index_select(0, perm)
        return EpochBatches(
            users=data.users.index_select(0, perm),
            movies=data.movies.index_select(0, perm),
            residuals=data.ratings.index_select(0, perm).sub_(global_mean),
            shrink_user=(wu * (-lr * reg_f)).unsqueeze_(1),
            shrink_movie=(wi * (-lr * reg_f)).unsqueeze_(1),
            bias_reg_user=wu.mul_(reg_b),
            bias_reg_movie=wi.mul_(reg_b),
        )

    @torch.no_grad()
    def fit_slice(self, model, batch: EpochBatches) -> torch.Tensor:
        """One update from a prepared batch; returns the summed squared error before it."""
        lr = self.param_groups[0]["lr"]
        implicit = self.implicit
        if self.kernel == "auto" and batch.users.is_cuda and implicit is None:
            from recsys_assets.core.rating import triton_sgd

            if triton_sgd.available(batch.users):
                return triton_sgd.sgd_step(model, lr, batch)
        u, i, r, shrink_u, shrink_i, breg_u, breg_i = batch.fields()
        P = model.user_factors.weight
        Q = model.movie_factors.weight
        bu = model.user_bias.weight.view(-1)
        bi = model.movie_bias.weight.view(-1)
        # batch-sized scratch tensors are reused across steps: allocating ~1 MB four times a step
        # costs a quarter of the CPU step time in page faults
        pu, qi, prod, step_q = self._scratch(len(u), P.shape[1], P.device, P.dtype)
        torch.index_select(P, 0, u, out=pu)
        torch.index_select(Q, 0, i, out=qi)
        bu_u = bu.index_select(0, u)
        bi_i = bi.index_select(0, i)
        err = torch.mul(pu, qi, out=prod).sum(1).add_(bu_u).add_(bi_i).sub_(r)
        sq = err.square().sum()
        bu.index_add_(0, u, torch.addcmul(err, bu_u, breg_u), alpha=-lr)
        bi.index_add_(0, i, torch.addcmul(err, bi_i, breg_i), alpha=-lr)
        neg = err.mul_(-lr).unsqueeze_(1)
        torch.mul(qi, shrink_i, out=step_q).addcmul_(neg, pu)  # uses the old p_u, so before p_u's step
        if implicit is not None:  # P holds p_u + z_u: shrink p_u alone, and add up e * q_i per user
            implicit.g.index_add_(0, u, qi * neg, alpha=-1.0 / lr)  # neg = -lr * e
            pu.sub_(implicit.z.index_select(0, u))
        P.index_add_(0, u, pu.mul_(shrink_u).addcmul_(neg, qi))  # pu is a gathered copy: update in place
        Q.index_add_(0, i, step_q)
        return sq

    def _scratch(self, n: int, dim: int, device, dtype) -> list[torch.Tensor]:
        key = (n, dim, str(device), dtype)
        cache = self.__dict__.setdefault("_scratch_cache", {})
        if key not in cache:
            if len(cache) > 4:  # batch sizes come and go (the last batch of an epoch): keep few
                cache.clear()
            cache[key] = [torch.empty((n, dim), device=device, dtype=dtype) for _ in range(4)]
        return cache[key]

    @torch.no_grad()
    def fit_epoch(self, model, perm: torch.Tensor, data: WeightedRatings, batch_size: int) -> torch.Tensor:
        """Updates from consecutive ``batch_size`` slices of the ratings taken in ``perm`` order.

        On the CPU with Numba this
        is one compiled call (core/rating/numba_sgd.py); otherwise :meth:`prepare_epoch` and a
        :meth:`fit_slice` per batch.  Returns the summed squared error before each update.
        """
        if self.kernel == "auto" and not data.users.is_cuda:
            from recsys_assets.core.rating import numba_sgd

            if numba_sgd.available(model.user_factors.weight):
                lr, reg_f, reg_b = self._hyper
                scratch = self.__dict__.setdefault("_numba_scratch", numba_sgd.Scratch())
                return numba_sgd.sgd_epoch(
                    model,
                    data,
                    perm,
                    batch_size=batch_size,
                    lr=lr,
                    reg_factors=reg_f,
                    reg_bias=reg_b,
                    scratch=scratch,
                    implicit=self.implicit,
                )
        epoch = self.prepare_epoch(perm, data, float(model.global_mean))
        total = torch.zeros((), device=data.users.device)
        for start in range(0, len(epoch), batch_size):
            total += self.fit_slice(model, epoch[start : start + batch_size])
        return total

    @torch.no_grad()
    def fit_batch(self, model, data: WeightedRatings) -> torch.Tensor:
        """One update from a plain batch; returns its summed squared error."""
        perm = torch.arange(len(data), device=data.users.device)
        return self.fit_epoch(model, perm, data, max(1, len(data)))


class GraphedEpoch:
    """Runs an epoch of :class:`FusedSGD` steps on CUDA by replaying a captured window of steps.

    The window (``window`` batches of ``batch_size``) reads from static input
    buffers; each replay first copies the next slice of the epoch into them.
    Batches that do not fill a whole window run eagerly.
    """

    def __init__(self, optimizer: FusedSGD, model, template: EpochBatches, batch_size: int, window: int = 64):
        self.optimizer, self.model = optimizer, model
        self.batch_size, self.window = batch_size, window
        span = batch_size * window
        self.span = span
        self.buffers = template[:span].clone()
        self.total = torch.zeros((), device=template.users.device)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        saved = [p.detach().clone() for p in params]
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):  # warm-up outside the graph, as CUDA graphs require
                self._steps()
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._steps()
        with torch.no_grad():  # undo the warm-up updates (and the implicit-feedback gradients they added up)
            for p, s in zip(params, saved):
                p.copy_(s)
            if optimizer.implicit is not None:
                optimizer.implicit.g.zero_()
        self.total.zero_()

    def _steps(self) -> None:
        bs = self.batch_size
        for k in range(self.window):
            sl = slice(k * bs, (k + 1) * bs)
            self.total += self.optimizer.fit_slice(self.model, self.buffers[sl])

    def run(self, epoch: EpochBatches) -> torch.Tensor:
        """All of ``epoch``'s updates; returns its summed squared error (a device scalar)."""
        self.total.zero_()
        n = len(epoch)
        start = 0
        while start + self.span <= n:
            self.buffers.copy_(epoch[start : start + self.span])
            self.graph.replay()
            start += self.span
        rest = torch.zeros((), device=self.total.device)
        for s in range(start, n, self.batch_size):
            rest += self.optimizer.fit_slice(self.model, epoch[s : s + self.batch_size])
        return self.total + rest


def count_weights(index: torch.Tensor, size: int, exponent: float) -> torch.Tensor:
    """Per-row regularization weight ``(mean_count / count) ** exponent`` (counts clamped at 1)."""
    counts = torch.bincount(index, minlength=size).clamp(min=1).to(torch.float32)
    return (counts.mean() / counts).pow(exponent)
