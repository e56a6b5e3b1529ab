"""A good model is never lost: promotion against the published model, kept versions, rollback."""

import hashlib
import json
from dataclasses import replace

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import torch

from recsys_assets import Recommender
from recsys_assets.cli import main
from recsys_assets.core.rating.model_file import ModelFileError
from recsys_assets.core.sample_data import SampleSpec, write_sample_export
from recsys_assets.definitions import ASSETS
from recsys_assets.defs import training
from recsys_assets.defs.ranking import RankingConfig
from recsys_assets.defs.resources import DeviceResource, RecsysStorage, resources_for

from .conftest import TINY, ml_small_ratings

CHAIN = ASSETS[:7]  # ingest .. recommendation_model, training_loss_plot, ranking_model
FULL = TINY  # 4,000 ratings, 120 users
MEDIUM = replace(TINY, n_ratings=12_000, n_users=200)  # enough held-back ratings to tell models apart
FIXED_CAPACITY = {"factors": [64], "regularization": [45.0]}  # no capacity compared on an inner split


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(export, data_dir, **config):
    return _run_with(export, data_dir, ranking=config, **config)


def _run_with(export, data_dir, *, ranking: dict, **config):
    run_config = dg.RunConfig(
        ops={
            "recommendation_model": training.RecommendationModelConfig(**{"epochs": 5, **config}),
            "ranking_model": RankingConfig(**ranking),
        }
    )
    return dg.materialize(
        CHAIN,
        resources=resources_for(
            RecsysStorage(export_path=str(export), data_dir=str(data_dir)), DeviceResource(device="cpu")
        ),
        run_config=run_config,
        raise_on_error=False,
    )


def _check(result, asset, name):
    return next(
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.asset_check_evaluation_data.asset_check_key.asset_key == dg.AssetKey(asset)
        and e.asset_check_evaluation_data.asset_check_key.name == name
    )


def test_a_tiny_valid_export_leaves_the_published_models_byte_identical(tmp_path, data_dir, capsys):
    export = write_sample_export(tmp_path / "ratings.csv", FULL)
    assert _run(export, data_dir).success
    rating, ranking_file = data_dir / "recommendation_model.pth", data_dir / "ranking_model.pth"
    before = _digest(rating), _digest(ranking_file)

    # a valid export a third the size: every check on its own data passes
    write_sample_export(export, SampleSpec(n_ratings=1_500, n_users=40, n_movies=150, seed=3))
    small = _run(export, data_dir)
    assert not small.success
    assert _check(small, "recommendation_model", "beats_global_mean").passed  # a good model of its own data
    for asset in ("recommendation_model", "ranking_model"):
        check = _check(small, asset, "not_worse_than_published")
        assert not check.passed and "the data shrank" in check.description
        assert "RECSYS_FORCE_PUBLISH" in check.description
    assert (_digest(rating), _digest(ranking_file)) == before
    assert (data_dir / "recommendation_model.rejected.pth").exists()
    assert (data_dir / "ranking_model.rejected.pth").exists()

    # a deliberate override publishes it, and the history keeps both versions
    forced = _run(export, data_dir, force_publish=True)
    assert forced.success and _digest(rating) != before[0]
    assert main(["models", "--data-dir", str(data_dir)]) == 0
    listing = capsys.readouterr().out
    assert "*v0002" in listing and " v0001" in listing and "[other lineage]" in listing

    # roll back: another export's ids, so it takes --force; the good pair is back, byte for byte (the ranking
    # model of the same data comes with it)
    assert main(["rollback", "--data-dir", str(data_dir)]) == 2
    assert "another export lineage" in capsys.readouterr().err
    assert main(["rollback", "--force", "--data-dir", str(data_dir)]) == 0
    assert "ranking_model.pth to v0001" in capsys.readouterr().out
    assert (_digest(rating), _digest(ranking_file)) == before
    assert main(["rollback", "--ranking", "--data-dir", str(data_dir)]) == 2  # nothing older
    assert main(["rollback", "v0009", "--data-dir", str(data_dir)]) == 2
    assert "no intact version 'v0009'" in capsys.readouterr().err


def test_a_retrain_on_the_same_export_is_published(tmp_path, data_dir):
    """Nothing fresh to compare on and no shrinking: the rule lets an equal model through."""
    export = write_sample_export(tmp_path / "ratings.csv", FULL)
    assert _run(export, data_dir).success
    again = _run(export, data_dir)
    assert again.success
    assert "fresh validation ratings" in _check(again, "recommendation_model", "not_worse_than_published").description


def _rewrite(source, target, change):
    frame = pd.read_csv(source)
    change(frame)
    frame.to_csv(target, index=False)
    return target


def _inverted(frame):
    frame["rating"] = 5.5 - frame["rating"]


def _permuted_users(frame):
    ids = frame["userId"].unique()
    frame["userId"] = frame["userId"].map(dict(zip(ids, np.random.default_rng(1).permutation(ids))))


def _rekeyed_inverted(frame):
    """The hostile review's re-keyed poison: inverted ratings, every user id moved so none is shared."""
    frame["rating"] = 5.5 - frame["rating"]
    frame["userId"] = frame["userId"] + 100_000


def test_hostile_exports_are_judged_on_the_published_models_held_back_ratings(tmp_path, data_dir):
    """Inverted ratings on the same pairs, permuted user ids, and inverted ratings under new user ids (judged on
    the movies, the held-back users folded in) are rejected; an honest re-export is published."""
    original = write_sample_export(tmp_path / "original.csv", MEDIUM)
    export = tmp_path / "ratings.csv"
    export.write_bytes(original.read_bytes())
    assert _run(export, data_dir).success
    rating, ranking_file = data_dir / "recommendation_model.pth", data_dir / "ranking_model.pth"
    before = _digest(rating), _digest(ranking_file)
    held = torch.load(rating, weights_only=True)
    assert len(held["heldback_ratings"]) > 100 and "evaluation_state_dict" in held

    for attack in (_inverted, _permuted_users, _rekeyed_inverted):
        _rewrite(original, export, attack)
        result = _run(export, data_dir)
        check = _check(result, "recommendation_model", "not_worse_than_published")
        assert not result.success and not check.passed, (attack.__name__, check.description)
        assert "worse than the published model: held-back RMSE" in check.description
        assert "RECSYS_FORCE_PUBLISH" in check.description
        assert (_digest(rating), _digest(ranking_file)) == before, attack.__name__

    # honest: the same export plus more ratings from the same users and movies
    frame = pd.read_csv(original)
    more = write_sample_export(tmp_path / "more.csv", replace(MEDIUM, n_ratings=MEDIUM.n_ratings * 5 // 4))
    extra = pd.read_csv(more)
    extra = extra[~extra.set_index(["userId", "movieId"]).index.isin(frame.set_index(["userId", "movieId"]).index)]
    pd.concat([frame, extra.head(MEDIUM.n_ratings // 4)]).to_csv(export, index=False)
    honest = _run(export, data_dir)
    check = _check(honest, "recommendation_model", "not_worse_than_published")
    assert honest.success and check.passed and "held-back RMSE" in check.description, check.description
    assert _digest(rating) != before[0]


def test_another_export_lineage_goes_live_only_when_the_operator_accepts_it(tmp_path, data_dir):
    export = write_sample_export(tmp_path / "ratings.csv", FULL)
    assert _run(export, data_dir).success
    before = _digest(data_dir / "recommendation_model.pth")
    _rewrite(export, export, lambda f: f.update({"userId": f["userId"] + 10_000, "movieId": f["movieId"] + 10_000}))
    other = _run(export, data_dir)
    for asset in ("recommendation_model", "ranking_model"):
        check = _check(other, asset, "not_worse_than_published")
        assert not check.passed and "a different export lineage" in check.description, check.description
        assert "RECSYS_ACCEPT_NEW_LINEAGE" in check.description
    assert not other.success and _digest(data_dir / "recommendation_model.pth") == before
    accepted = _run_with(export, data_dir, ranking={"accept_new_lineage": True}, accept_new_lineage=True)
    for asset in ("recommendation_model", "ranking_model"):
        check = _check(accepted, asset, "not_worse_than_published")
        assert check.passed and "the operator accepts new lineages" in check.description, check.description
    assert accepted.success and _digest(data_dir / "recommendation_model.pth") != before


def test_the_two_models_go_live_together_or_not_at_all(tmp_path, data_dir):
    export = write_sample_export(tmp_path / "ratings.csv", FULL)
    assert _run(export, data_dir).success
    rating, ranking_file = data_dir / "recommendation_model.pth", data_dir / "ranking_model.pth"
    before = _digest(rating), _digest(ranking_file)

    # new data: the rating model passes, the ranking model loses to most popular -> neither changes (the
    # generator draws other movie ids for another size: a new lineage, accepted here)
    write_sample_export(export, replace(FULL, n_ratings=4_400))
    new = {"accept_new_lineage": True}
    # iALS alone and no fallback to most popular: it loses and is not published
    bad_ranking = {"factors": [1], "regularization": [1e7], "iterations": 1, "blend": False, "fallback": False, **new}
    result = _run_with(export, data_dir, ranking=bad_ranking, **new)
    assert _check(result, "recommendation_model", "not_worse_than_published").passed
    assert not _check(result, "ranking_model", "beats_most_popular").passed
    assert (_digest(rating), _digest(ranking_file)) == before
    assert (data_dir / "recommendation_model.rejected.pth").exists()
    assert not list((data_dir / "staged").glob("*.pth"))  # nothing left waiting
    # a pair from different exports is refused by the Recommender, with a clear error
    with pytest.raises(ModelFileError, match="come from different exports"):
        Recommender.load(data_dir / "recommendation_model.rejected.pth", ranking_path=ranking_file)

    # both pass: both go live, recorded as one release
    assert _run(export, data_dir, **new).success
    assert _digest(rating) != before[0] and _digest(ranking_file) != before[1]
    record = json.loads((data_dir / "models" / "recommendation_model" / "v0002.json").read_text())
    assert record["pair"] == {"file": "ranking_model.pth", "version": "v0002"}
    Recommender.load(rating)  # the live pair loads


@pytest.mark.e2e
def test_on_movielens_the_attacks_are_refused_and_an_honest_reexport_is_published(tmp_path, data_dir):
    """The issue's two attacks on real data (90% of ml-latest-small published first), and the honest
    re-export: the same ratings plus the other 10%. iALS alone at one capacity, no item-item model (EASE on
    9,700 movies is most of a run's time) and 20 epochs at most: what is tested is the held-back evidence, not
    the choices (4 whole runs)."""
    source = pd.read_csv(ml_small_ratings())
    base = source.sample(frac=0.9, random_state=0)
    export = tmp_path / "ratings.csv"
    base.to_csv(export, index=False)
    ranking = {**FIXED_CAPACITY, "blend": False, "min_ratings": False, "item_item": "none"}
    run = lambda: _run_with(export, data_dir, ranking=ranking, epochs=20)  # noqa: E731
    assert run().success
    before = _digest(data_dir / "recommendation_model.pth"), _digest(data_dir / "ranking_model.pth")
    ids = base["userId"].unique()
    permuted = base["userId"].map(dict(zip(ids, np.random.default_rng(1).permutation(ids))))
    for attack in (base.assign(rating=5.5 - base["rating"]), base.assign(userId=permuted)):
        attack.to_csv(export, index=False)
        result = run()
        for asset in ("recommendation_model", "ranking_model"):
            check = _check(result, asset, "not_worse_than_published")
            assert not check.passed and "worse than the published model: held-back" in check.description
        assert (_digest(data_dir / "recommendation_model.pth"), _digest(data_dir / "ranking_model.pth")) == before
    source.to_csv(export, index=False)
    honest = run()
    assert honest.success, [
        _check(honest, a, "not_worse_than_published").description for a in ("recommendation_model", "ranking_model")
    ]
    assert _digest(data_dir / "recommendation_model.pth") != before[0]
