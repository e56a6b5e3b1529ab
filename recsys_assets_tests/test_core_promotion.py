"""The promotion rule and the model history, called directly."""

import math

import numpy as np
import pytest

from recsys_assets.core.artifact_store import ArtifactStore
from recsys_assets.core.model_history import ModelHistory
from recsys_assets.core.promotion import DataSize, Evidence, PromotionPolicy, decide, rmse_evidence
from recsys_assets.core.ranking.interactions import UserItems

FULL = DataSize(users=610, movies=9_724, ratings=100_836)


def test_nothing_published_yet_publishes():
    assert decide(DataSize(3, 10, 300), None, None, PromotionPolicy()).publish


def test_a_small_export_cannot_replace_a_model_trained_on_much_more():
    promotion = decide(DataSize(3, 280, 300), FULL, None, PromotionPolicy())
    assert not promotion.publish
    assert any("3 users against the published model's 610" in r for r in promotion.reasons)
    assert any("ratings" in r for r in promotion.reasons)
    forced = decide(DataSize(3, 280, 300), FULL, None, PromotionPolicy(force=True))
    assert forced.publish and forced.forced and "forced despite" in forced.describe()


def test_a_worse_model_on_fresh_ratings_is_refused_within_tolerance_it_passes():
    policy = PromotionPolicy(rmse_tolerance=0.01)
    worse = Evidence("val RMSE", candidate=0.90, current=0.85, fresh_ratings=5_000, lower_is_better=True)
    close = Evidence("val RMSE", candidate=0.855, current=0.85, fresh_ratings=5_000, lower_is_better=True)
    assert not decide(FULL, FULL, worse, policy).publish
    assert decide(FULL, FULL, close, policy).publish
    ndcg_worse = Evidence("val NDCG@10", candidate=0.20, current=0.30, fresh_ratings=5_000, lower_is_better=False)
    assert not decide(FULL, FULL, ndcg_worse, policy).publish


def test_too_few_fresh_ratings_skip_the_comparison_and_say_so():
    thin = Evidence("val RMSE", candidate=2.0, current=0.5, fresh_ratings=10, lower_is_better=True)
    promotion = decide(FULL, FULL, thin, PromotionPolicy(min_fresh_ratings=100))
    assert promotion.publish and "10 fresh validation ratings" in promotion.describe()


@pytest.mark.parametrize("field", ["min_data_ratio", "rmse_tolerance", "ndcg_tolerance"])
def test_nan_and_negative_settings_are_refused(field):
    for bad in (math.nan, -1.0, math.inf):
        with pytest.raises(ValueError, match=field):
            PromotionPolicy(**{field: bad}).validate()


def test_fresh_means_never_trained_on():
    seen = UserItems.from_pairs(np.array([0, 0, 1]), np.array([1, 2, 5]), 3, 10)  # (0,1), (0,2), (1,5)
    users, movies = np.array([0, 0, 1, -1, 2]), np.array([1, 3, 5, 1, -1])
    assert (~seen.contains(users, movies)).tolist() == [False, True, False, True, True]
    evidence = rmse_evidence(
        np.array([3.0, 4.0, 5.0]), np.array([3.0, 3.0, 3.0]), np.array([3.0, 4.0, 5.0]), np.array([False, True, True])
    )
    assert evidence.fresh_ratings == 2 and evidence.candidate == 0.0
    assert evidence.current == pytest.approx(math.sqrt((1 + 4) / 2))


def test_history_keeps_the_last_versions_and_rolls_back_atomically(tmp_path):
    store = ArtifactStore(tmp_path)
    history = ModelHistory(store, "recommendation_model.pth", keep=2)
    for k in range(3):
        (tmp_path / "recommendation_model.pth").write_bytes(f"model {k}".encode())
        history.record({"metrics": {"val_rmse": 0.9 - k / 100}})
    assert [v.name for v in history.versions()] == ["v0003", "v0002"]  # v0001 pruned
    assert history.current() == "v0003"
    restored = history.rollback()
    assert restored.name == "v0002" and (tmp_path / "recommendation_model.pth").read_bytes() == b"model 1"
    assert history.current() == "v0002"
    history.rollback("3")
    assert (tmp_path / "recommendation_model.pth").read_bytes() == b"model 2"
    with pytest.raises(ValueError, match="no version 'v0001'"):
        history.rollback("v0001")
    assert not list(tmp_path.rglob("*.tmp"))
