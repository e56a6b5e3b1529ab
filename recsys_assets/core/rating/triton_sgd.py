"""A fused CUDA kernel (Triton) for one :class:`~recsys_assets.core.rating.optim.FusedSGD` step.

The eager step launches about twenty kernels and writes several batch-sized
temporaries; this kernel does the whole step in one pass: each program loads a
block of ratings, gathers their user and movie rows, computes the errors and
adds the updates back with atomic adds (Hogwild within the batch, like the
eager step's ``index_add_``).  It is used on CUDA when Triton is installed and
``FusedSGD(kernel="auto")`` (the default); elsewhere nothing here is imported.
"""

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - CPU-only installs
    triton = None


def available(tensor: torch.Tensor) -> bool:
    return triton is not None and tensor.is_cuda


if triton is not None:

    @triton.jit
    def _sgd_step_kernel(
        P,
        Q,
        BU,
        BI,
        U,
        I,
        R,
        SU,
        SI,
        BRU,
        BRI,
        SQ,
        n,
        lr,
        D: tl.constexpr,
        D_PAD: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        pid = tl.program_id(0)
        offs = pid * BLOCK + tl.arange(0, BLOCK)
        rows = offs < n
        u = tl.load(U + offs, mask=rows, other=0)
        i = tl.load(I + offs, mask=rows, other=0)
        r = tl.load(R + offs, mask=rows, other=0.0)
        d = tl.arange(0, D_PAD)
        cols = d < D
        m2 = rows[:, None] & cols[None, :]
        p_ptr = P + u[:, None] * D + d[None, :]
        q_ptr = Q + i[:, None] * D + d[None, :]
        pu = tl.load(p_ptr, mask=m2, other=0.0)
        qi = tl.load(q_ptr, mask=m2, other=0.0)
        bu = tl.load(BU + u, mask=rows, other=0.0)
        bi = tl.load(BI + i, mask=rows, other=0.0)
        err = tl.sum(pu * qi, axis=1) + bu + bi - r
        err = tl.where(rows, err, 0.0)
        tl.atomic_add(SQ, tl.sum(err * err, axis=0))
        bru = tl.load(BRU + offs, mask=rows, other=0.0)
        bri = tl.load(BRI + offs, mask=rows, other=0.0)
        tl.atomic_add(BU + u, -lr * (err + bru * bu), mask=rows)
        tl.atomic_add(BI + i, -lr * (err + bri * bi), mask=rows)
        su = tl.load(SU + offs, mask=rows, other=0.0)
        si = tl.load(SI + offs, mask=rows, other=0.0)
        neg = (-lr * err)[:, None]
        tl.atomic_add(p_ptr, pu * su[:, None] + neg * qi, mask=m2)
        tl.atomic_add(q_ptr, qi * si[:, None] + neg * pu, mask=m2)


def sgd_step(model, lr: float, batch) -> torch.Tensor:
    """The fused step on an :class:`~recsys_assets.core.rating.optim.EpochBatches`; same result as ``FusedSGD.fit_slice``."""
    u, i, r, shrink_u, shrink_i, breg_u, breg_i = batch.fields()
    if triton is None:
        raise RuntimeError("the Triton step needs triton installed (callers check available() first)")
    P = model.user_factors.weight
    Q = model.movie_factors.weight
    n, dim = len(u), P.shape[1]
    sq = torch.zeros((), device=P.device, dtype=torch.float32)
    if n == 0:
        return sq
    block = 32
    grid = (triton.cdiv(n, block),)
    _sgd_step_kernel[grid](  # pyright: ignore[reportIndexIssue] - a triton.jit kernel is launched by indexing
        P,
        Q,
        model.user_bias.weight,
        model.movie_bias.weight,
        u,
        i,
        r,
        shrink_u.reshape(-1),
        shrink_i.reshape(-1),
        breg_u,
        breg_i,
        sq,
        n,
        lr,
        D=dim,
        D_PAD=triton.next_power_of_2(dim),
        BLOCK=block,
        num_warps=2,
    )
    return sq
