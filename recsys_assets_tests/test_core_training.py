import hashlib
import math
import os

import pytest
import torch

from recsys_assets.core.cleaning import clean_rating_data
from recsys_assets.core.ids import build_mappings
from recsys_assets.core.ingest import MovieDataLoader
from recsys_assets.core.rating.dataset import MovieRatingDataset
from recsys_assets.core.rating.implicit_feedback import ImplicitFeedback
from recsys_assets.core.rating.metrics import baselines, mae, rmse
from recsys_assets.core.rating.model import BiasedMF
from recsys_assets.core.rating.optim import FusedSGD, WeightedRatings
from recsys_assets.core.rating.train_config import TrainConfig
from recsys_assets.core.rating.training import (
    MIN_BATCHES_PER_EPOCH,
    TrainingDivergedError,
    epoch_batch_size,
    train_model,
)
from recsys_assets.core.sample_data import SampleSpec, generate_ratings
from recsys_assets.core.splits import split_ratings

from .conftest import ml_small_ratings


def _data(spec: SampleSpec | None = None):
    spec = spec or SampleSpec(n_ratings=20_000, n_users=300, n_movies=800, seed=5)
    df = generate_ratings(spec).to_pandas().rename(columns={"userId": "user_id", "movieId": "movie_id"})
    users, movies = build_mappings(df)
    train, val = split_ratings(df)
    return (
        MovieRatingDataset.from_frame(train, users, movies),
        MovieRatingDataset.from_frame(val, users, movies),
        len(users),
        len(movies),
    )


@pytest.fixture(scope="module")
def data():
    return _data()


def _baselines(train, val, nu, nm):
    return baselines(train.arrays(), val.arrays(), n_users=nu, n_movies=nm)


def test_model_forward_is_biased_mf():
    model = BiasedMF(3, 4, 2, global_mean=3.0)
    with torch.no_grad():
        model.user_bias.weight[:] = torch.tensor([[0.5], [0.0], [0.0]])
        model.movie_bias.weight[:] = torch.tensor([[0.0], [-1.0], [0.0], [0.0]])
        model.user_factors.weight[0] = torch.tensor([1.0, 2.0])
        model.movie_factors.weight[1] = torch.tensor([0.5, 0.25])
    assert model(torch.tensor([0]), torch.tensor([1])).item() == pytest.approx(3.0 + 0.5 - 1.0 + 1.0)
    assert model.n_parameters == 3 * 2 + 4 * 2 + 3 + 4


def test_default_training_beats_both_baselines(data):
    train, val, nu, nm = data
    result = train_model(train, val, nu, nm, TrainConfig())
    best = result.history[result.best_epoch - 1]
    base = _baselines(train, val, nu, nm)
    assert best["val_rmse"] < base["global_mean_rmse"] - 0.05
    assert best["val_rmse"] < base["bias_only_rmse"]
    assert result.model.all_finite()


def test_document_recipe_runs_ten_epochs_and_learns(data):
    train, val, nu, nm = data
    messages = []
    result = train_model(train, val, nu, nm, TrainConfig.plain_adam(), on_epoch=lambda r: messages.append(r["message"]))
    assert result.epochs_run == 10 and isinstance(result.optimizer, torch.optim.SparseAdam)
    assert messages[0].splitlines()[0] == "Epoch 1/10:"
    assert messages[0].splitlines()[1].startswith("Training Loss: ")
    assert messages[0].splitlines()[2].startswith("Validation Loss: ")
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]


def test_same_seed_same_model_on_cpu(data):
    train, val, nu, nm = data
    config = TrainConfig(epochs=3)
    a = train_model(train, val, nu, nm, config).model.state_dict()
    b = train_model(train, val, nu, nm, config).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = train_model(train, val, nu, nm, TrainConfig(epochs=3, seed=1)).model.state_dict()
    assert not torch.equal(a["user_factors.weight"], c["user_factors.weight"])


def test_early_stopping_restores_the_best_epoch(data):
    train, val, nu, nm = data
    # a large learning rate overfits fast, so validation loss turns up early
    config = TrainConfig(learning_rate=0.03, reg_factors=0.0, reg_bias=0.0, epochs=60, patience=2)
    result = train_model(train, val, nu, nm, config)
    assert result.stopped_early and result.epochs_run == result.best_epoch + 3
    best_val = min(h["val_loss"] for h in result.history)
    from recsys_assets.core.rating.training import evaluate

    assert evaluate(result.model, val)[0] == pytest.approx(best_val, rel=1e-5)


KERNELS = ["auto", "eager"]  # auto = the compiled Numba step on the CPU


@pytest.mark.parametrize("kernel", KERNELS)
def test_fused_sgd_touches_only_the_batch_rows(kernel):
    model = BiasedMF(50, 60, 8, global_mean=3.0, init_std=0.1, sparse=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = FusedSGD(model.parameters(), lr=0.05, kernel=kernel)
    users, movies = torch.tensor([3, 7, 3]), torch.tensor([10, 20, 30])
    opt.fit_batch(model, WeightedRatings(users, movies, torch.tensor([5.0, 1.0, 4.0]), torch.ones(3), torch.ones(3)))
    after = model.state_dict()
    changed_users = (after["user_factors.weight"] != before["user_factors.weight"]).any(1).nonzero().flatten().tolist()
    changed_movies = (
        (after["movie_factors.weight"] != before["movie_factors.weight"]).any(1).nonzero().flatten().tolist()
    )
    assert changed_users == [3, 7] and changed_movies == [10, 20, 30]
    assert (after["user_bias.weight"] != before["user_bias.weight"]).nonzero()[:, 0].tolist() == [3, 7]


@pytest.mark.parametrize("kernel", KERNELS)
def test_fused_sgd_step_is_the_documented_update(kernel):
    """One rating, computed by hand from the formula in core/rating/optim.py's docstring."""
    model = BiasedMF(2, 2, 2, global_mean=3.0, sparse=False)
    with torch.no_grad():
        model.user_factors.weight[1] = torch.tensor([0.5, -1.0])
        model.movie_factors.weight[0] = torch.tensor([2.0, 0.25])
        model.user_bias.weight[1] = 0.25
        model.movie_bias.weight[0] = -0.5
    lr, rf, rb, wu, wi = 0.1, 0.2, 0.3, 2.0, 0.5
    opt = FusedSGD(model.parameters(), lr=lr, reg_factors=rf, reg_bias=rb, kernel=kernel)
    sq = opt.fit_batch(
        model,
        WeightedRatings(
            torch.tensor([1]), torch.tensor([0]), torch.tensor([4.0]), torch.tensor([wu]), torch.tensor([wi])
        ),
    )
    p, q = torch.tensor([0.5, -1.0]), torch.tensor([2.0, 0.25])
    e = 3.0 + 0.25 - 0.5 + float(p @ q) - 4.0
    assert float(sq) == pytest.approx(e * e)
    assert model.user_bias.weight[1].item() == pytest.approx(0.25 - lr * (e + rb * wu * 0.25))
    assert model.movie_bias.weight[0].item() == pytest.approx(-0.5 - lr * (e + rb * wi * -0.5))
    torch.testing.assert_close(model.user_factors.weight[1].detach(), p - lr * (e * q + rf * wu * p))
    torch.testing.assert_close(model.movie_factors.weight[0].detach(), q - lr * (e * p + rf * wi * q))


def _epochs_with(kernel, epochs=3, *, implicit=False, compiled=None):
    """Epochs of FusedSGD on random ratings: (losses, weights), plus the implicit factors with ``implicit``
    (``compiled``: ImplicitFeedback's step, compiled or as sparse products; None = its default)."""
    g = torch.Generator().manual_seed(3)
    n, nu, nm = 20_000, 200, 500  # many repeated users and movies in each batch
    users, movies = torch.randint(0, nu, (n,), generator=g), torch.randint(0, nm, (n,), generator=g)
    ratings = torch.randint(1, 11, (n,), generator=g).float() / 2
    w = torch.rand(n, generator=g) + 0.5
    torch.manual_seed(0)
    model = BiasedMF(nu, nm, 16, global_mean=float(ratings.mean()), init_std=0.1, sparse=False)
    opt = FusedSGD(model.parameters(), lr=0.01, kernel=kernel)
    if implicit:
        opt.implicit = ImplicitFeedback(users, movies, nu, nm, 16, compiled=compiled)
    data = WeightedRatings(users, movies, ratings, w, w)
    losses = []
    for _ in range(epochs):
        losses.append(float(opt.fit_epoch(model, torch.randperm(n, generator=g), data, 512)))
        if opt.implicit is not None:
            opt.implicit.step(model.user_factors.weight, 0.01, 1.0)
    if opt.implicit is not None:
        return losses, model.state_dict(), opt.implicit.y
    return losses, model.state_dict()


def test_compiled_epoch_matches_the_eager_epoch():
    pytest.importorskip("numba")
    (loss_a, a), (loss_e, e) = _epochs_with("auto"), _epochs_with("eager")
    assert loss_a == pytest.approx(loss_e, rel=1e-5)
    for k in a:  # the same updates; only float rounding order differs
        torch.testing.assert_close(a[k], e[k], rtol=1e-4, atol=1e-5)


def test_compiled_epoch_does_not_depend_on_the_thread_count(monkeypatch):
    """One and two threads (RECSYS_THREADS, read at each epoch) give bit-identical weights."""
    numba = pytest.importorskip("numba")
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba started with one thread")
    digests = set()
    for threads in ("1", "2"):
        monkeypatch.setenv("RECSYS_THREADS", threads)
        _, s = _epochs_with("auto")
        digests.add(hashlib.sha256(b"".join(s[k].numpy().tobytes() for k in sorted(s))).hexdigest())
    assert len(digests) == 1


def test_sparse_adam_touches_only_the_batch_rows(data):
    model = BiasedMF(50, 60, 8, global_mean=3.0, sparse=True)
    before = model.user_factors.weight.detach().clone()
    opt = torch.optim.SparseAdam(list(model.parameters()), lr=0.01)
    loss = ((model(torch.tensor([1, 2]), torch.tensor([3, 4])) - 5.0) ** 2).mean()
    loss.backward()
    opt.step()
    changed = (model.user_factors.weight.detach() != before).any(1).nonzero().flatten().tolist()
    assert changed == [1, 2]


def test_diverging_training_fails_clearly(data):
    train, val, nu, nm = data
    with pytest.raises(TrainingDivergedError, match="lower learning_rate"):
        train_model(train, val, nu, nm, TrainConfig(learning_rate=5.0, init_std=1.0, epochs=3))


def test_invalid_config_is_rejected(data):
    train, val, nu, nm = data
    with pytest.raises(ValueError, match="optimizer"):
        train_model(train, val, nu, nm, TrainConfig(optimizer="rmsprop"))
    with pytest.raises(ValueError, match="batch_size"):
        train_model(train, val, nu, nm, TrainConfig(batch_size=0))
    with pytest.raises(ValueError, match="kernel"):
        train_model(train, val, nu, nm, TrainConfig(kernel="cuda"))


class _Stop(Exception):
    pass


def test_interrupted_training_resumes_from_its_checkpoint(data, tmp_path):
    train, val, nu, nm = data
    config = TrainConfig(epochs=6, patience=10)
    ckpt = tmp_path / "train.pt"
    full = train_model(train, val, nu, nm, config)

    def stop_at_3(record):
        if record["epoch"] == 3:
            raise _Stop

    with pytest.raises(_Stop):
        train_model(train, val, nu, nm, config, checkpoint_path=ckpt, on_epoch=stop_at_3)
    resumed = train_model(train, val, nu, nm, config, checkpoint_path=ckpt)
    assert resumed.resumed_from_epoch == 3 and resumed.epochs_run == 6
    assert [h["val_loss"] for h in resumed.history] == pytest.approx([h["val_loss"] for h in full.history])
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k])
    # a checkpoint of other settings is not resumed
    other = train_model(train, val, nu, nm, TrainConfig(epochs=2, seed=9), checkpoint_path=ckpt)
    assert other.resumed_from_epoch == 0


def test_metrics():
    assert rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(math.sqrt(4 / 3))
    assert mae([1, 2, 3], [1, 2, 5]) == pytest.approx(2 / 3)


def test_movielens_small_reaches_the_accuracy_goal():
    """On ml-latest-small (80/20, random_state=42) the shipped defaults reach RMSE <= 0.855."""
    raw = MovieDataLoader(ml_small_ratings()).load()
    ratings = clean_rating_data(raw).ratings
    users, movies = build_mappings(ratings)
    train, val = split_ratings(ratings)
    train_ds, val_ds = (
        MovieRatingDataset.from_frame(train, users, movies),
        MovieRatingDataset.from_frame(val, users, movies),
    )
    result = train_model(train_ds, val_ds, len(users), len(movies), TrainConfig())
    best = result.history[result.best_epoch - 1]
    base = _baselines(train_ds, val_ds, len(users), len(movies))
    assert best["val_rmse"] <= 0.855
    assert best["val_rmse"] < base["bias_only_rmse"] < base["global_mean_rmse"]


def test_epoch_order_is_a_uniform_reproducible_permutation():
    from collections import Counter

    from recsys_assets.core.rating.numba_sgd import epoch_order

    g = torch.Generator().manual_seed(7)
    big = epoch_order(300_000, g)
    assert torch.equal(torch.sort(big).values, torch.arange(300_000))  # every index exactly once
    assert not torch.equal(big, epoch_order(300_000, g))  # the generator moves on
    again = torch.Generator().manual_seed(7)
    assert torch.equal(big, epoch_order(300_000, again))  # same generator state, same order (resume)
    counts = Counter(tuple(epoch_order(4, g).tolist()) for _ in range(12_000))
    assert len(counts) == 24 and max(counts.values()) < 1.25 * 500 and min(counts.values()) > 0.75 * 500
    firsts = Counter(int(epoch_order(50_000, g)[0]) * 10 // 50_000 for _ in range(1_000))
    assert len(firsts) == 10 and min(firsts.values()) > 60  # the first slot is not stuck in one bucket


def _ml_small_head(rows: int):
    import pandas as pd

    frame = pd.read_csv(ml_small_ratings(), nrows=rows).rename(columns={"userId": "user_id", "movieId": "movie_id"})
    users, movies = build_mappings(frame)
    train_frame, val_frame = split_ratings(frame)
    train = MovieRatingDataset.from_frame(train_frame, users, movies)
    return train, MovieRatingDataset.from_frame(val_frame, users, movies), len(users), len(movies)


@pytest.mark.parametrize("rows", [2_000, 10_000])
def test_the_defaults_train_to_finite_weights_on_a_small_dense_export(rows):
    """The first ratings of ml-latest-small (18 users for 2,000 rows, up to 314 ratings each): with one
    4096-rating batch per epoch the loss (summed before each batch's step) lagged the step by an epoch, so
    after a diverged epoch no halving of the step size could show and 2,000 ratings raised
    TrainingDivergedError; the batch is now capped to an eighth of the data and the defaults converge."""
    train, val, n_users, n_movies = _ml_small_head(rows)
    result = train_model(train, val, n_users, n_movies, TrainConfig())
    assert result.model.all_finite() and not result.learning_rate_backoffs
    assert result.batch_size == epoch_batch_size(4096, len(train)) == -(-len(train) // MIN_BATCHES_PER_EPOCH)
    best = result.history[result.best_epoch - 1]
    base = _baselines(train, val, n_users, n_movies)
    assert best["val_rmse"] < base["global_mean_rmse"]


def test_a_diverging_step_size_backs_off_and_recovers_on_a_small_export():
    """Too large a step on 2,000 ratings: the epoch is run again with half the step until it converges."""
    train, val, n_users, n_movies = _ml_small_head(2_000)
    result = train_model(train, val, n_users, n_movies, TrainConfig(learning_rate=0.3))
    assert result.learning_rate_backoffs and result.final_learning_rate < 0.3
    assert result.model.all_finite()
    assert (
        result.history[result.best_epoch - 1]["val_rmse"]
        < _baselines(train, val, n_users, n_movies)["global_mean_rmse"]
    )


def test_the_batch_size_is_capped_to_the_data_only_when_small():
    assert epoch_batch_size(4096, 1_600) == 200 and epoch_batch_size(4096, 7) == 1
    assert epoch_batch_size(4096, 80_000) == 4096 and epoch_batch_size(1024, 1) == 1


@pytest.mark.parametrize(
    "field, value",
    [
        ("min_delta", math.nan),
        ("init_std", -0.1),
        ("learning_rate", math.inf),
        ("init_std", math.nan),
        ("reg_bias", math.nan),
    ],
)
def test_nan_and_out_of_range_settings_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value}).validate()


def test_a_full_disk_is_a_clear_error_and_leaves_no_partial_file(tmp_path, monkeypatch):
    """torch.save straight to a file reported "unexpected pos ..." on ENOSPC; now it is the OS's error."""
    import errno

    from recsys_assets.core import atomic

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "write", full)
    with pytest.raises(OSError, match="No space left on device") as err:
        atomic.atomic_torch_save({"w": torch.zeros(1000)}, tmp_path / "model.pth")
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(tmp_path / "model.pth")  # the file named
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_at_a_training_checkpoint_warns_once_and_training_goes_on(data, tmp_path, monkeypatch, caplog):
    """The second epoch's checkpoint hits a full disk half-way: its temporary file is removed, the first
    epoch's checkpoint stays, one warning names the folder and ENOSPC, and training finishes."""
    import errno
    import logging

    from recsys_assets.core import atomic

    train, val, nu, nm = data
    config = TrainConfig(epochs=4, patience=10)
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    ckpt = folder / "train.pt"
    real_write, tries = os.write, []

    def write(fd, payload):
        if "train.pt" in os.readlink(f"/proc/self/fd/{fd}"):  # the checkpoint's temporary file
            tries.append(len(payload))
            if len(tries) == 2:
                real_write(fd, bytes(memoryview(payload)[: len(payload) // 2]))
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, payload)

    monkeypatch.setattr(atomic.os, "write", write)
    with caplog.at_level(logging.WARNING, logger="recsys_assets.core.rating.checkpoint"):
        result = train_model(train, val, nu, nm, config, checkpoint_path=ckpt)
    monkeypatch.undo()
    assert result.epochs_run == 4 and len(tries) == 2  # no checkpoint tried after the full disk
    assert [p.name for p in folder.iterdir()] == ["train.pt"]  # the partial temporary file is gone
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert str(folder) in warning and "the disk is full (ENOSPC)" in warning and "\n" not in warning
    resumed = train_model(train, val, nu, nm, config, checkpoint_path=ckpt)  # the first epoch's checkpoint
    assert resumed.resumed_from_epoch == 1
    for k, v in result.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k])


def test_epoch_batches_slice_as_views_and_copy_in_place():
    """What GraphedEpoch relies on: a slice is a view of the same storage, clone() is not, copy_() fills in place."""
    from recsys_assets.core.rating.optim import EpochBatches

    fields = [torch.arange(8, dtype=torch.float32) + k for k in range(7)]
    batches = EpochBatches(*fields)
    window = batches[2:6]
    assert len(window) == 4 and window.users.data_ptr() == fields[0][2:].data_ptr()
    buffers = batches[:4].clone()
    assert buffers.users.data_ptr() != fields[0].data_ptr()
    buffers.copy_(batches[4:8])
    assert buffers.residuals.tolist() == fields[2][4:8].tolist()
    assert len(buffers[1:3]) == 2


def test_the_refit_learns_from_the_validation_ratings_too():
    """A user whose only ratings are in the validation split: untouched by the held-out fit, learned by the refit."""
    from recsys_assets.core.rating.training import refit_on_all

    train, val, nu, nm = _data()
    only_val = int(val.users[0])
    moved = train.users == only_val  # every rating of that user goes to the validation split
    val = MovieRatingDataset(*(torch.cat([a, b[moved]]).numpy() for a, b in zip(val[:], train[:])))
    train = MovieRatingDataset(*(t[~moved].numpy() for t in train[:]))
    config = TrainConfig(epochs=5)
    held = train_model(train, val, nu, nm, config)
    refit = refit_on_all(train, val, nu, nm, config, epochs=held.best_epoch)
    assert held.model.user_bias.weight[only_val].item() == 0.0
    assert refit.model.user_bias.weight[only_val].item() != 0.0
    assert refit.epochs_run == held.best_epoch and refit.model.all_finite()


def test_switching_threads_between_chunks_of_an_epoch_changes_nothing(monkeypatch):
    """The thread tuner runs an epoch in chunks of whole batches and may change the thread count
    between them: the weights are those of one uninterrupted call."""
    pytest.importorskip("numba")
    from recsys_assets.core.rating import numba_sgd

    if numba_sgd.numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one CPU: there is no other thread count to switch to")
    whole = _epochs_with("auto")
    monkeypatch.setattr(numba_sgd, "CHUNK_RATINGS", 1024)
    monkeypatch.setattr(numba_sgd, "PROBE_RATINGS", 512)
    counts = iter([2, 1] * 1000)

    class Alternating(numba_sgd.ThreadTuner):
        def choose(self):
            return min(next(counts), numba_sgd.numba.config.NUMBA_NUM_THREADS), bool(self.chunks % 3 == 2)

    monkeypatch.setattr(numba_sgd, "ThreadTuner", Alternating)
    chunked = _epochs_with("auto")
    assert chunked[0] == pytest.approx(whole[0], rel=1e-6)
    for k in whole[1]:
        torch.testing.assert_close(chunked[1][k], whole[1][k], rtol=0, atol=0)


@pytest.mark.parametrize("min_delta", [0.0, 0.003, 0.01])
def test_the_best_epoch_rule_replayed_from_the_history_is_the_trainers(min_delta):
    """early_stopping.best_epoch (what the loss plot marks) picks the epoch the trainer restored; with a
    min_delta a later, slightly lower validation loss is not the best epoch (the plot once marked it)."""
    from recsys_assets.core.rating import early_stopping

    train, val, nu, nm = _data(SampleSpec(n_ratings=4_000, n_users=120, n_movies=400, seed=7))
    result = train_model(train, val, nu, nm, TrainConfig(epochs=12, min_delta=min_delta, patience=20))
    assert early_stopping.best_epoch(result.history, min_delta) == result.best_epoch
    lowest = min(result.history, key=lambda h: h["val_loss"])["epoch"]
    assert (lowest == result.best_epoch) == (min_delta == 0.0), (lowest, result.best_epoch)
    # no validation split: the training loss is monitored, by the trainer and the replay alike
    alone = train_model(train, MovieRatingDataset._of(*val[:0]), nu, nm, TrainConfig(epochs=4, min_delta=min_delta))
    assert early_stopping.best_epoch(alone.history, min_delta) == alone.best_epoch >= 1
