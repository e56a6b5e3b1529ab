"""The read path (``recsys recommend``, ``recsys serve``): model files read without PyTorch (``core/weights_file.py``)
and answered in numpy; the same checks, the same model and the same recommendations as ``torch.load``."""

import io
import os
import pickle
import subprocess
import sys
import zipfile
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from recsys_assets.core.model_errors import ModelFileError
from recsys_assets.core.ranking import blend, ials, topn
from recsys_assets.core.ranking.blend import Weights
from recsys_assets.core.ranking.itemitem import _rows_times_numpy, fit_item_item
from recsys_assets.core.ranking.model import RankingModel
from recsys_assets.core.ranking.params import IALSParams, ItemItemParams
from recsys_assets.core.rating.model_file import load_model_file, read_model_file
from recsys_assets.core.recommender import Recommender
from recsys_assets.core.weights_file import read_weights

from .conftest import REPO_ROOT
from .model_files import ranked_pair


def _blended_pair(tmp_path):
    """``ranked_pair``'s files with the ranking model made a blend of iALS, item-item (EASE) and popularity."""
    path, matrix, user_ids, movie_ids = ranked_pair(tmp_path)
    ranker = RankingModel.load(tmp_path / "ranking_model.pth")
    items = fit_item_item(matrix, ItemItemParams(method="ease", neighbours=10))
    assert items is not None
    blended = replace(ranker, item_item=items.weights, weights=Weights(factors=1.0, items=0.7, popularity=0.2))
    blended.save(tmp_path / "ranking_model.pth")
    return path, user_ids, movie_ids


def _same(a, b, where="") -> None:
    """``a`` (torch.load's) and ``b`` (read_weights') hold the same values, tensors as arrays."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, np.ndarray) and b.dtype == a.numpy().dtype, where
        np.testing.assert_array_equal(a.numpy(), b, err_msg=where)
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            _same(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for x, y in zip(a, b, strict=True):
            _same(x, y, where)
    else:
        assert a == b or (a != a and b != b), (where, a, b)


def test_the_numpy_reader_reads_what_torch_load_reads(tmp_path):
    _blended_pair(tmp_path)
    for name in ("recommendation_model.pth", "ranking_model.pth"):
        _same(torch.load(tmp_path / name, weights_only=True), read_weights(tmp_path / name))
    _same(
        load_model_file(tmp_path / "recommendation_model.pth"), read_model_file(tmp_path / "recommendation_model.pth")
    )


def test_recommendations_are_the_same_through_either_reader(tmp_path):
    path, user_ids, movie_ids = _blended_pair(tmp_path)
    by_torch, by_numpy = Recommender.load(path, reader="torch"), Recommender.load(path, reader="numpy")
    assert by_numpy.ranker is not None and by_numpy.ranker.item_item is not None
    for by in ("ranking", "rating"):
        pd.testing.assert_frame_equal(
            by_torch.recommend_many(user_ids[:20], k=8, by=by), by_numpy.recommend_many(user_ids[:20], k=8, by=by)
        )
    rated = {int(movie_ids[0]): 5.0, int(movie_ids[3]): 4.0}
    pd.testing.assert_frame_equal(by_torch.recommend_for_ratings(rated), by_numpy.recommend_for_ratings(rated))
    pd.testing.assert_frame_equal(by_torch.similar_movies(movie_ids[2]), by_numpy.similar_movies(movie_ids[2]))


def test_the_read_path_imports_neither_pytorch_nor_numba(tmp_path):
    """A process that loads the published pair and answers (a known user, someone new, similar movies)
    never imports PyTorch or Numba: the answers come from numpy."""
    path, user_ids, movie_ids = _blended_pair(tmp_path)
    code = (
        "import sys\n"
        "from recsys_assets.core.recommender import Recommender\n"
        f"rec = Recommender.load({str(path)!r})\n"
        f"top = rec.recommend({int(user_ids[0])}, k=5)\n"
        f"new = rec.recommend_for_ratings({{{int(movie_ids[0])}: 5.0, {int(movie_ids[3])}: 4.0}}, k=5)\n"
        f"like = rec.similar_movies({int(movie_ids[2])}, k=5)\n"
        "assert top.attrs['by'] == 'ranking' and len(top) == len(new) == len(like) == 5\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numba', 'implicit', 'sklearn'))\n"
        "print(','.join(heavy) or 'none')\n"
        "print(top.movie_id.tolist(), new.movie_id.tolist(), like.movie_id.tolist())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    heavy, lists = proc.stdout.splitlines()
    assert heavy == "none"
    # the same lists as this process gives, where PyTorch is loaded and the training paths (Numba, torch) run
    rec = Recommender.load(path, reader="torch")
    top = rec.recommend(int(user_ids[0]), k=5)
    new = rec.recommend_for_ratings({int(movie_ids[0]): 5.0, int(movie_ids[3]): 4.0}, k=5)
    like = rec.similar_movies(int(movie_ids[2]), k=5)
    assert lists == f"{top.movie_id.tolist()} {new.movie_id.tolist()} {like.movie_id.tolist()}"


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _with_pickle(source, target, payload: bytes) -> None:
    """``source``'s archive with its data.pkl replaced by ``payload``."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            new.writestr(item, payload if item.filename.endswith("/data.pkl") else old.read(item.filename))


@pytest.mark.parametrize("reader", [read_model_file, RankingModel.read])
def test_a_file_whose_pickle_runs_code_is_refused(tmp_path, reader):
    path, *_ = ranked_pair(tmp_path)
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    _with_pickle(path, evil, pickle.dumps({"format_version": 1, "x": _Exploit(marker)}, protocol=2))
    with pytest.raises(ModelFileError, match=r"posix\.system|os\.system|nt\.system"):
        reader(evil)
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload, message",
    [
        (pickle.dumps(io.BytesIO(b"x"), protocol=2), "refused"),  # any class outside the allowlist
        (b"\x80\x02(X\x01\x00\x00\x00aQ.", "persistent id"),  # a persistent id other than a storage
        (b"not a pickle", "readable"),
    ],
)
def test_anything_but_plain_values_and_tensors_is_refused(tmp_path, payload, message):
    path, *_ = ranked_pair(tmp_path)
    bad = tmp_path / "bad.pth"
    _with_pickle(path, bad, payload)
    with pytest.raises(ModelFileError, match=message):
        read_model_file(bad)
    with pytest.raises(ModelFileError):
        read_model_file(tmp_path / "missing.pth")
    (tmp_path / "plain.pth").write_bytes(b"PK not really a zip")
    with pytest.raises(ModelFileError, match="readable"):
        read_model_file(tmp_path / "plain.pth")


def test_the_numpy_arithmetic_matches_the_training_paths(tmp_path):
    """The read path's numpy forms (top-N, the blend's top-k, item-item scores, the fold-in solve) agree with
    the PyTorch / Numba forms the training side runs."""
    rng = np.random.default_rng(1)
    _, matrix, *_ = ranked_pair(tmp_path)
    P, Q = rng.normal(size=(matrix.n_users, 4)).astype(np.float32), rng.normal(size=(30, 4)).astype(np.float32)
    users = np.arange(12)
    bias = rng.normal(size=30).astype(np.float32)
    expected = topn.top_n(P, Q, matrix, k=6, users=users, movie_bias=bias)
    got = topn._top_n_numpy(P, Q, matrix, 6, users, movie_bias=bias, block=4)
    np.testing.assert_array_equal(expected.movies, got.movies)
    np.testing.assert_allclose(expected.scores, got.scores, rtol=1e-5)
    items = fit_item_item(matrix, ItemItemParams(method="ease", neighbours=10))
    assert items is not None
    from recsys_assets.core.ranking import kernels

    np.testing.assert_allclose(
        _rows_times_numpy(matrix, users, items.weights, True),
        kernels.rows_times(matrix, users, items.weights, binary=True),
        rtol=1e-5,
        atol=1e-6,
    )
    parts = blend.Components(P, Q, items.weights, matrix.movie_counts())
    weights = [Weights(1.0, 0.7, 0.2), Weights(0.0, 0.0, 1.0)]
    factors, scores = blend._raw_parts(parts, matrix, users, weights)
    popularity = parts.popularity()
    coef = np.array([[w.factors, w.items, w.popularity] for w in weights])
    by_numba = kernels.blend_top_k(factors, scores, popularity, coef, matrix, users, k=6, mask=True)
    by_numpy = blend._block_top_k_numpy(factors, scores, popularity, weights, matrix, users, k=6, mask=True)
    np.testing.assert_array_equal(by_numba[0], by_numpy[0])  # ties (popularity alone): the lower index first
    np.testing.assert_allclose(by_numba[1], by_numpy[1], rtol=1e-4, atol=1e-5)
    params = IALSParams(factors=4, regularization=1.0)
    np.testing.assert_allclose(ials.solve_users(Q, matrix, params), ials._solve_numpy(Q, matrix, params), rtol=1e-3)
