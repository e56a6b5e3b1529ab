"""One module per rule: a change in the one place reaches every user of the rule."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys_assets.core import atomic, formats, numbers
from recsys_assets.core.cleaning import clean_rating_data
from recsys_assets.core.ingest import BusyError, CheckpointStore, ExportError, MovieDataLoader
from recsys_assets.core.locks import exclusive_lock
from recsys_assets.core.sample_data import SampleSpec, write_sample_export

from .conftest import REPO_ROOT

CORE = REPO_ROOT / "recsys_assets"


def _load(tmp_path: Path, text: str) -> pd.DataFrame:
    path = tmp_path / "export.csv"
    path.write_text(text)
    return MovieDataLoader(path, None).load()


# ------------------------------------------------------------------ numbers and NaN spellings
def test_an_extra_nan_spelling_reaches_the_loader_and_cleaning(tmp_path, monkeypatch):
    text = "userId,movieId,rating,timestamp\n1,10,n/a,100\n2,20,4.0,200\n"
    frame = pd.DataFrame({"userId": ["1", "2"], "movieId": ["10", "20"], "rating": ["n/a", "4.0"]})
    # today "n/a" is not a number: both say non_numeric
    assert _load(tmp_path, text)["error"].tolist()[0] == "non_numeric:rating"
    assert clean_rating_data(frame, max_rejected_fraction=None).reason_counts == {"non_numeric": 1}

    monkeypatch.setattr(numbers, "NAN_SPELLINGS", numbers.NAN_SPELLINGS | {"n/a"})
    loaded = _load(tmp_path, text)
    assert loaded["error"].isna().all() and np.isnan(loaded["rating"].iloc[0])
    # both now read it as NaN: a rating off the scale, not an unparseable field
    assert clean_rating_data(frame, max_rejected_fraction=None).reason_counts == {"rating_off_scale": 1}
    assert clean_rating_data(loaded, max_rejected_fraction=None).reason_counts == {"rating_off_scale": 1}


ODD = ["abc", " 7 ", "+8", "1e3", "2.0", "2.5", "nan", "inf", "", str(2**53 + 1), "-3"]


def test_loader_and_cleaning_read_odd_numbers_alike(tmp_path):
    # one column of odd ids through the loader's exact path and through cleaning's text path
    lines = "".join(f"{u},10,3.0,100\n" for u in ODD)
    loaded = _load(tmp_path, "userId,movieId,rating,timestamp\n" + lines)
    from_loader = clean_rating_data(loaded, max_rejected_fraction=None)
    from_text = clean_rating_data(
        pd.DataFrame({"userId": ODD, "movieId": ["10"] * len(ODD), "rating": ["3.0"] * len(ODD)}),
        max_rejected_fraction=None,
    )
    assert (
        from_loader.ratings["user_id"].tolist() == from_text.ratings["user_id"].tolist() == [7, 8, 1000, 2, 2**53 + 1]
    )
    q_loader = from_loader.quarantine.assign(row=from_loader.quarantine["line"] - 2)
    q_text = from_text.quarantine.assign(row=from_text.quarantine["line"] - 2)
    assert q_loader[["row", "reason"]].values.tolist() == q_text[["row", "reason"]].values.tolist()


def test_parse_text_keeps_integers_exact():
    parsed = numbers.parse_text(
        pd.Series([str(2**53 + 1), str(2**63 - 1), str(2**63), "-" + str(2**63), "1e19", " 5 "])
    )
    assert parsed.ints[:2].tolist() == [2**53 + 1, 2**63 - 1]
    assert parsed.integral.tolist() == [True, True, False, True, False, True]
    assert parsed.out_of_range.tolist() == [False, False, True, False, True, False]
    assert parsed.ints[3] == -(2**63) and parsed.ints[5] == 5


# ------------------------------------------------------------------------------ export schema
def test_an_extra_alias_reaches_the_loader_and_cleaning(tmp_path, monkeypatch):
    text = "reviewer,movieId,rating\n1,10,4.0\n"
    with pytest.raises(ExportError, match="user_id"):
        _load(tmp_path, text)
    with pytest.raises(ValueError, match="user_id"):
        clean_rating_data(pd.DataFrame({"reviewer": [1], "movieId": [10], "rating": [4.0]}))

    monkeypatch.setitem(formats._ALIASES, "user_id", formats._ALIASES["user_id"] | {"reviewer"})
    assert _load(tmp_path, text)["user_id"].tolist() == [1]
    cleaned = clean_rating_data(pd.DataFrame({"reviewer": [1], "movieId": [10], "rating": [4.0]}))
    assert cleaned.ratings["user_id"].tolist() == [1]


def test_loader_and_cleaning_share_aliases_and_required_columns(tmp_path):
    from recsys_assets.core.cleaning import columns

    assert columns.REQUIRED_COLUMNS is formats.REQUIRED_COLUMNS
    header = "uid,item_id,stars,ts"
    loaded = _load(tmp_path, f"{header}\n1,10,4.0,100\n")
    cleaned = clean_rating_data(pd.DataFrame([[1, 10, 4.0, 100]], columns=header.split(",")))
    assert loaded[list(formats.CANONICAL_COLUMNS)].values.tolist() == cleaned.ratings.values.tolist()


# ------------------------------------------------------------------------------------- locks
def test_the_checkpoint_lock_and_the_artifact_lock_are_one_lock(tiny_export, tmp_path):
    ckpt = tmp_path / "ckpt.json"
    with exclusive_lock(tmp_path / "ckpt.json.lock", "an artifact"):
        with pytest.raises(BusyError, match="in use by another load"):
            MovieDataLoader(tiny_export, ckpt).load()
    with CheckpointStore(ckpt).locked():
        with pytest.raises(BusyError, match="being written by another run"):
            with exclusive_lock(tmp_path / "ckpt.json.lock", "the checkpoint"):
                pass
    assert len(MovieDataLoader(tiny_export, ckpt).load()) == 4_000


def test_only_locks_py_takes_file_locks():
    users = [p for p in CORE.rglob("*.py") if re.search(r"\bfcntl\b", p.read_text()) and p.name != "locks.py"]
    assert users == []


# ------------------------------------------------------------------------------ atomic writes
def test_checkpoints_and_artifacts_publish_through_the_one_atomic_helper(tmp_path, monkeypatch):
    published = []
    real = atomic._replace
    monkeypatch.setattr(
        atomic, "_replace", lambda tmp, target: (published.append(Path(target).name), real(tmp, target))
    )
    export = write_sample_export(tmp_path / "export.csv", SampleSpec(n_ratings=500, n_users=20, n_movies=50, seed=1))
    assert published == ["export.csv"]
    MovieDataLoader(export, tmp_path / "ckpt.json", 100, 200).load()
    assert "ckpt.json" in published and "part-000001.arrow" in published


def test_only_atomic_py_renames_files():
    pattern = re.compile(r"os\.(replace|rename)\(|\.rename\(\w*tmp|\.replace\(\w*target")
    users = [p for p in CORE.rglob("*.py") if pattern.search(p.read_text()) and p.name != "atomic.py"]
    assert users == []


# ------------------------------------------------------------------------------ rating scale
def test_a_change_of_the_rating_scale_reaches_every_user(tmp_path, monkeypatch):
    """Cleaning, the quality check, training's clamp, the baselines, the ranking confidence, the synthetic
    exports and serving all read core/rating_scale.py when they run: a 1-10 scale in whole stars reaches each."""
    from recsys_assets.core import quality, rating_scale
    from recsys_assets.core.ids import IdMapping
    from recsys_assets.core.ranking.ials import IALSParams, confidence
    from recsys_assets.core.rating.dataset import MovieRatingDataset
    from recsys_assets.core.rating.metrics import baselines
    from recsys_assets.core.rating.train_config import TrainConfig
    from recsys_assets.core.rating.training import train_model
    from recsys_assets.core.recommender import Recommender
    from recsys_assets.core.sample_data import generate_ratings

    from .model_files import hand_set_model_file

    frame = pd.DataFrame({"userId": [1, 1, 2, 2], "movieId": [10, 20, 10, 30], "rating": [0.5, 8.0, 10.0, 4.5]})
    assert clean_rating_data(frame, max_rejected_fraction=None).reason_counts == {"rating_off_scale": 2}
    assert TrainConfig().rating_max == 5.0 and confidence(np.array([5.0]), IALSParams(alpha=1.0))[0] == 6.0

    monkeypatch.setattr(rating_scale, "SCALE", rating_scale.RatingScale(low=1.0, high=10.0, step=1.0))
    cleaned = clean_rating_data(frame, max_rejected_fraction=None)
    assert cleaned.reason_counts == {"rating_off_scale": 1} and sorted(cleaned.ratings["rating"]) == [4.5, 8.0, 10.0]
    assert quality.ratings_in_scale(cleaned.ratings)[0] and not quality.ratings_in_scale(frame)[0]
    assert rating_scale.narrowed() == (1.0, 10.0)
    with pytest.raises(ValueError, match="within the rating scale 1-10"):
        rating_scale.narrowed(0.5, None)
    config = TrainConfig(epochs=3)
    assert (config.rating_min, config.rating_max) == (1.0, 10.0)
    users, ratings = np.arange(40) % 8, 9.0 + (np.arange(40) % 2)  # ratings of 9 and 10: above the old top
    train = MovieRatingDataset(users[:32], np.arange(40)[:32] % 5, ratings[:32])
    val = MovieRatingDataset(users[32:], np.arange(40)[32:] % 5, ratings[32:])
    assert train_model(train, val, 8, 5, config).history[-1]["val_rmse"] < 1.0  # clamped at 10, not at 5
    base = baselines(train.arrays(), val.arrays(), n_users=8, n_movies=5)
    assert base["global_mean_rmse"] < 1.0 and base["bias_only_rmse"] < 1.0
    assert confidence(np.array([10.0]), IALSParams(alpha=1.0))[0] == 11.0  # alpha in units of the new top
    sample = generate_ratings(SampleSpec(n_ratings=2_000, n_users=50, n_movies=200, seed=3))["rating"].to_numpy()
    assert sample.min() >= 1.0 and (sample == np.round(sample)).all()  # whole stars from 1
    plain = Recommender(
        global_mean=9.0,
        user_bias=np.zeros(1),
        movie_bias=np.array([2.0]),
        user_factors=np.zeros((1, 2), np.float32),
        movie_factors=np.zeros((1, 2), np.float32),
        users=IdMapping(np.array([1])),
        movies=IdMapping(np.array([7])),
    )
    assert plain.rating_range == (1.0, 10.0) and plain.predict([1], [7]).tolist() == [10.0]
    with pytest.raises(ValueError, match="within 1.0-10.0"):
        plain.recommend_for_ratings({7: 0.5})
    # a model file records the scale it was trained on and is served on it
    assert Recommender.load(hand_set_model_file(tmp_path), find_ranking=False).rating_range == (0.5, 5.0)
