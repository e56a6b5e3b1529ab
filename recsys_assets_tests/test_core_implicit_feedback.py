"""Implicit feedback (SVD++-style, core/rating/implicit_feedback.py): the sums, the update, both kernels, and what it learns from."""

import pytest
import torch

from recsys_assets.core.rating.dataset import MovieRatingDataset
from recsys_assets.core.rating.implicit_feedback import ImplicitFeedback
from recsys_assets.core.rating.model import BiasedMF
from recsys_assets.core.rating.optim import FusedSGD, WeightedRatings
from recsys_assets.core.rating.train_config import TrainConfig
from recsys_assets.core.rating.training import train_model

from .test_core_training import _epochs_with


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "sparse-products"])
def test_z_is_the_scaled_sum_of_the_rated_movies_implicit_factors(compiled):
    if compiled:
        pytest.importorskip("numba")
    users, movies = torch.tensor([0, 0, 0, 1, 2, 2]), torch.tensor([1, 2, 3, 3, 0, 3])
    fb = ImplicitFeedback(users, movies, 4, 5, 2, compiled=compiled)
    model_users = torch.zeros(4, 2)
    fb.g[0] = torch.tensor([1.0, -2.0])
    fb.g[2] = torch.tensor([0.5, 0.5])
    fb.step(model_users, lr=0.1, reg=0.0)
    # y_j moves against the sum of |N(u)|^-0.5 g_u over its raters
    s0, s2 = 3**-0.5, 2**-0.5
    expected_y = torch.zeros(5, 2)
    for j in (1, 2, 3):
        expected_y[j] -= 0.1 * s0 * torch.tensor([1.0, -2.0])
    for j in (0, 3):
        expected_y[j] -= 0.1 * s2 * torch.tensor([0.5, 0.5])
    torch.testing.assert_close(fb.y, expected_y)
    expected_z = torch.stack(
        [
            s0 * expected_y[[1, 2, 3]].sum(0),
            1.0 * expected_y[3],
            s2 * expected_y[[0, 3]].sum(0),
            torch.zeros(2),  # user 3 rated nothing
        ]
    )
    torch.testing.assert_close(fb.z, expected_z)
    torch.testing.assert_close(model_users, expected_z)  # the effective user factors moved by z's change
    assert not fb.g.any()  # cleared for the next epoch
    fb.step(model_users, lr=0.1, reg=1.0)  # with no gradient, L2 shrinks y by lr * reg
    torch.testing.assert_close(fb.y, expected_y * 0.9)


@pytest.mark.parametrize("kernel", ["auto", "eager"])
def test_one_step_regularizes_p_alone_and_adds_up_the_users_gradient(kernel):
    if kernel == "auto":
        pytest.importorskip("numba")
    model = BiasedMF(2, 2, 2, global_mean=3.0, sparse=False)
    p_eff, q, z = torch.tensor([0.5, -1.0]), torch.tensor([2.0, 0.25]), torch.tensor([0.2, 0.4])
    with torch.no_grad():
        model.user_factors.weight[1] = p_eff
        model.movie_factors.weight[0] = q
    lr, rf, w = 0.1, 0.2, 2.0
    opt = FusedSGD(model.parameters(), lr=lr, reg_factors=rf, reg_bias=0.0, kernel=kernel)
    opt.implicit = ImplicitFeedback(torch.tensor([1]), torch.tensor([0]), 2, 2, 2)
    opt.implicit.z[1] = z
    one = torch.tensor([1]), torch.tensor([0]), torch.tensor([4.0]), torch.tensor([w]), torch.tensor([1.0])
    opt.fit_batch(model, WeightedRatings(*one))
    e = 3.0 + float(p_eff @ q) - 4.0
    torch.testing.assert_close(model.user_factors.weight[1].detach(), p_eff - lr * (e * q + rf * w * (p_eff - z)))
    torch.testing.assert_close(model.movie_factors.weight[0].detach(), q - lr * (e * p_eff + rf * 1.0 * q))
    torch.testing.assert_close(opt.implicit.g[1], e * q)


def test_the_compiled_and_the_eager_kernel_agree_with_implicit_feedback():
    pytest.importorskip("numba")
    (_, a, ya), (_, e, ye) = (
        _epochs_with("auto", implicit=True),
        _epochs_with("eager", implicit=True, compiled=False),
    )
    assert ya.abs().sum() > 0
    torch.testing.assert_close(ya, ye, rtol=1e-4, atol=1e-5)
    for k in a:
        torch.testing.assert_close(a[k], e[k], rtol=1e-4, atol=1e-5)


def test_only_training_ratings_count_as_rated():
    """A movie rated only in the validation split never gets an implicit factor: which movies a user
    will be asked about is not known at training time."""
    g = torch.Generator().manual_seed(1)
    n, nu, nm = 4000, 40, 60
    users, movies = torch.randint(0, nu, (n,), generator=g), torch.randint(0, nm - 5, (n,), generator=g)
    ratings = torch.randint(1, 11, (n,), generator=g).float() / 2
    train = MovieRatingDataset._of(users, movies, ratings)
    val = MovieRatingDataset._of(torch.arange(5), torch.arange(nm - 5, nm), torch.full((5,), 4.0))
    result = train_model(train, val, nu, nm, TrainConfig(epochs=3, refit=False))
    y = result.optimizer.implicit.y  # type: ignore[attr-defined]
    assert y[: nm - 5].abs().sum(1).gt(0).all() and not y[nm - 5 :].any()
    off = train_model(train, val, nu, nm, TrainConfig(epochs=3, implicit_lr=0.0))
    assert off.optimizer.implicit is None  # type: ignore[attr-defined]


def test_the_compiled_validation_pass_matches_the_pytorch_one():
    """evaluate() takes one compiled pass for a BiasedMF on the CPU; the same sums as the model's forward."""
    pytest.importorskip("numba")
    from recsys_assets.core.rating import numba_sgd

    g = torch.Generator().manual_seed(2)
    model = BiasedMF(30, 40, 8, global_mean=3.5, init_std=0.5)
    torch.nn.init.normal_(model.user_bias.weight, 0, 1, generator=g)
    users, movies = torch.randint(0, 30, (999,), generator=g), torch.randint(0, 40, (999,), generator=g)
    ratings = torch.randint(1, 11, (999,), generator=g).float() / 2
    with torch.no_grad():
        pred = model(users, movies).double()
    clamped = pred.clamp(0.5, 5.0)
    sums = numba_sgd.squared_errors(model, users, movies, ratings, (0.5, 5.0))
    expected = ((pred - ratings) ** 2).sum(), ((clamped - ratings) ** 2).sum(), (clamped - ratings).abs().sum()
    assert bool((clamped != pred).any())  # some predictions were clamped
    assert sums == pytest.approx([float(x) for x in expected], rel=1e-5)
