"""The contract every model that makes top-k lists keeps, as implicit's ``recommender_base_test`` holds its
recommenders to one: the rating model (``Recommender`` over the trained ``BiasedMF``), the ranking model
(``RankingModel``, the blend it chose) and most popular (the same file's parts, as the popularity-only blend).

Each is a real model: the chain (``raw_ratings`` .. ``ranking_model``) is materialized twice on the tiny
sample export with the same seeds, once per folder; nothing is mocked.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from recsys_assets.core.atomic import atomic_torch_save
from recsys_assets.core.ranking.blend import Weights
from recsys_assets.core.ranking.model import RankingModel
from recsys_assets.core.rating.model_file import load_model_file
from recsys_assets.core.recommender import Recommender
from recsys_assets.core.sample_data import write_sample_export
from recsys_assets.definitions import ASSETS
from recsys_assets.defs.resources import DeviceResource, RecsysStorage, resources_for

from .conftest import TINY

MODELS = ["rating", "ranking", "most popular"]
K = 10
RATING, RANKING = "recommendation_model.pth", "ranking_model.pth"


@dataclass
class Model:
    """One model behind the contract's questions, in raw ids."""

    top_k: Callable[[int, int], tuple[np.ndarray, np.ndarray]]  # (user id, k) -> (movie ids, scores), best first
    seen: Callable[[int], set]  # movie ids the user rated (what the model was fitted on)
    users: np.ndarray
    movies: np.ndarray
    round_trip: Callable[[Path], "Model"]  # saved to a folder and loaded back


def _rating(folder: Path) -> Model:
    model = Recommender.load(folder / RATING, find_ranking=False)

    def top_k(user: int, k: int):
        frame = model.recommend(user, k, by="rating")
        return frame["movie_id"].to_numpy(), frame["score"].to_numpy()

    def seen(user: int) -> set:
        return set(model.movies.ids[model.seen(int(model.users.encode([user])[0]))].tolist())

    def round_trip(to: Path) -> Model:
        atomic_torch_save(load_model_file(folder / RATING), to / RATING)
        return _rating(to)

    return Model(top_k, seen, model.users.ids, model.movies.ids, round_trip)


def _ranking(model: RankingModel) -> Model:
    def top_k(user: int, k: int):
        result = model.top_n(model.users.encode([user]), k)
        return model.movies.ids[result.movies[0]], result.scores[0]

    def seen(user: int) -> set:
        return set(model.movies.ids[model.seen.row(int(model.users.encode([user])[0]))].tolist())

    def round_trip(to: Path) -> Model:
        model.save(to / RANKING)
        return _ranking(RankingModel.load(to / RANKING))

    return Model(top_k, seen, model.users.ids, model.movies.ids, round_trip)


def _load(name: str, folder: Path) -> Model:
    if name == "rating":
        return _rating(folder)
    ranking = RankingModel.load(folder / RANKING)
    if name == "most popular":
        ranking = replace(ranking, weights=Weights(factors=0.0, items=0.0, popularity=1.0))
    return _ranking(ranking)


def _train(export: Path, folder: Path) -> Path:
    folder.mkdir()
    resources = resources_for(
        RecsysStorage(export_path=str(export), data_dir=str(folder)), DeviceResource(device="cpu")
    )
    assert dg.materialize(ASSETS[:7], resources=resources).success  # raw_ratings .. ranking_model
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    """Two trainings on the same export with the same seeds."""
    root = tmp_path_factory.mktemp("contract")
    export = write_sample_export(root / "ratings.csv", TINY)
    return _train(export, root / "first"), _train(export, root / "second")


def _users(model: Model) -> list[int]:
    return model.users[:: max(1, len(model.users) // 15)].tolist()


@pytest.mark.parametrize("name", MODELS)
def test_top_k_is_k_distinct_known_unseen_movies_best_first(name, folders):
    model = _load(name, folders[0])
    for user in _users(model):
        movies, scores = model.top_k(user, K)
        assert len(movies) == K == len(set(movies.tolist())), (user, movies)
        assert set(movies.tolist()) <= set(model.movies.tolist())
        assert not set(movies.tolist()) & model.seen(user), f"user {user} was recommended a movie they rated"
        assert np.all(np.isfinite(scores)) and np.all(np.diff(scores) <= 0), (user, scores)


@pytest.mark.parametrize("name", MODELS)
def test_a_saved_and_loaded_model_gives_the_same_top_k(name, folders, tmp_path):
    model = _load(name, folders[0])
    loaded = model.round_trip(tmp_path)
    for user in _users(model):
        (movies, scores), (again, again_scores) = model.top_k(user, K), loaded.top_k(user, K)
        np.testing.assert_array_equal(movies, again)
        np.testing.assert_array_equal(scores, again_scores)


@pytest.mark.parametrize("name", MODELS)
def test_the_same_seed_gives_the_same_top_k(name, folders):
    first, second = (_load(name, folder) for folder in folders)
    for user in _users(first):
        (movies, scores), (again, again_scores) = first.top_k(user, K), second.top_k(user, K)
        np.testing.assert_array_equal(movies, again)
        np.testing.assert_allclose(scores, again_scores, rtol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_an_unknown_user_gets_the_documented_fallback_or_a_clear_error(name, folders):
    model = _load(name, folders[0])
    stranger = int(model.users.max()) + 1_000
    if name == "rating":  # Recommender: the most-popular list, flagged as a fallback
        frame = Recommender.load(folders[0] / RATING, find_ranking=False).recommend(stranger, K, by="rating")
        assert frame.attrs["fallback"] == "popularity" and len(frame) == K
    else:  # RankingModel addresses users by index: an unknown raw id is named in the error
        with pytest.raises(KeyError, match=rf"not in the mapping, e.g. \[{stranger}\]"):
            model.top_k(stranger, K)


def test_the_three_models_are_three_different_rankers(folders):
    """The contract is not passed by one model three times: the lists differ between the models."""
    models = {name: _load(name, folders[0]) for name in MODELS}
    user = _users(models["rating"])[0]
    lists = {name: tuple(m.top_k(user, K)[0].tolist()) for name, m in models.items()}
    assert len(set(lists.values())) == 3, lists
