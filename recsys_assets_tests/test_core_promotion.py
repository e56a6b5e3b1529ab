"""The promotion rule and the model history, called directly."""

import math

import numpy as np
import pandas as pd
import pytest

from recsys_assets.core.artifact_store import ArtifactStore
from recsys_assets.core.heldback import plan_evaluation
from recsys_assets.core.ranking.interactions import UserItems
from recsys_assets.core.release import registry
from recsys_assets.core.release.candidate import MODEL_FILES, Candidate
from recsys_assets.core.release.decision import DataSize, Evidence, PromotionPolicy, decide, rmse_evidence
from recsys_assets.core.release.history import ModelHistory
from recsys_assets.core.release.lineage import Lineage, lineage

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


def _publish(history, tmp_path, content: bytes, **record):
    """Publish ``content`` as the next version through the registry (the one publish path)."""
    candidate = Candidate(history.name, lambda path: path.write_bytes(content), lambda path: None, record)
    outcome = registry.publish(history.store, candidate, True, keep=history.keep, work_folder=tmp_path / "work")
    return next(v for v in history.versions() if v.name == outcome.version)


def _rollback(history, tmp_path, version=None):
    """The one rollback (the registry's, under the publish lock): the restored version."""
    validators = dict.fromkeys(MODEL_FILES.values(), history.validate or (lambda path: None))
    restored = registry.rollback(history.store, history.name, version, validators, work_folder=tmp_path / "work")
    return restored[0][1]


def test_history_keeps_the_last_versions_and_rolls_back_atomically(tmp_path):
    store = ArtifactStore(tmp_path / "data")
    history = ModelHistory(store, "recommendation_model.pth", keep=2)
    for k in range(3):
        _publish(history, tmp_path, f"model {k}".encode(), metrics={"val_rmse": 0.9 - k / 100})
    live = tmp_path / "data" / "recommendation_model.pth"
    assert [v.name for v in history.versions()] == ["v0003", "v0002"]  # v0001 pruned
    assert history.current() == "v0003" and live.read_bytes() == b"model 2"
    restored = _rollback(history, tmp_path)
    assert restored.name == "v0002" and live.read_bytes() == b"model 1"
    assert history.current() == "v0002"
    _rollback(history, tmp_path, "3")
    assert live.read_bytes() == b"model 2"
    for spelling in ("v2", "2", "v0002", "0002"):
        assert _rollback(history, tmp_path, spelling).name == "v0002"
    with pytest.raises(ValueError, match="no intact version 'v0001'"):
        _rollback(history, tmp_path, "v0001")
    with pytest.raises(ValueError, match="not a version"):
        _rollback(history, tmp_path, "latest")
    assert not list(tmp_path.rglob("*.tmp"))


def test_the_version_is_recorded_before_the_live_file_switches(tmp_path, monkeypatch):
    """A full disk while recording leaves the old live file; the switch is the last write."""
    import errno

    store = ArtifactStore(tmp_path / "data")
    history = ModelHistory(store, "recommendation_model.pth")
    _publish(history, tmp_path, b"good")
    writes = []
    real_put = ArtifactStore.put

    def put(self, local, name):
        writes.append(name)
        if name.endswith("v0002.pth"):
            raise OSError(errno.ENOSPC, "No space left on device", name)
        return real_put(self, local, name)

    monkeypatch.setattr(ArtifactStore, "put", put)
    with pytest.raises(registry.PublishError, match="No space left"):
        _publish(history, tmp_path, b"new")
    assert (tmp_path / "data" / "recommendation_model.pth").read_bytes() == b"good"
    monkeypatch.setattr(ArtifactStore, "put", real_put)
    writes.clear()
    monkeypatch.setattr(
        ArtifactStore, "put", lambda self, local, name: writes.append(name) or real_put(self, local, name)
    )
    _publish(history, tmp_path, b"new")
    assert writes == ["models/recommendation_model/v0002.pth", "recommendation_model.pth"]  # the record first
    assert history.current() == "v0002"


def test_a_damaged_registry_is_named_and_the_intact_versions_still_work(tmp_path):
    store = ArtifactStore(tmp_path / "data")
    history = ModelHistory(store, "recommendation_model.pth", validate=lambda path: None)
    for k in range(3):
        _publish(history, tmp_path, f"model {k}".encode())
    folder = tmp_path / "data" / "models" / "recommendation_model"
    (folder / "v0002.json").write_text("{not json")
    (folder / "v0001.pth").write_bytes(b"tampered")  # its sha256 no longer matches its record
    scan = history.scan()
    assert [v.name for v in scan.versions] == ["v0003", "v0001"]
    assert any("v0002.json is damaged" in p for p in scan.problems)
    with pytest.raises(ValueError, match="no intact version 'v2'.*v0002.json is damaged"):
        _rollback(history, tmp_path, "v2")
    with pytest.raises(ValueError, match="does not match the sha256"):
        _rollback(history, tmp_path, "1")
    assert (tmp_path / "data" / "recommendation_model.pth").read_bytes() == b"model 2"
    assert _publish(history, tmp_path, b"model 3").name == "v0004"  # never reuses a damaged entry's number


def test_rollback_runs_the_files_full_validation(tmp_path):
    def validate(path):
        if path.read_bytes().startswith(b"bad"):
            raise ValueError("not a model")

    store = ArtifactStore(tmp_path / "data")
    history = ModelHistory(store, "recommendation_model.pth", validate=validate)
    _publish(history, tmp_path, b"bad model")
    _publish(history, tmp_path, b"good model")
    with pytest.raises(ValueError, match="fails validation \\(not a model\\); not restored"):
        _rollback(history, tmp_path)
    assert (tmp_path / "data" / "recommendation_model.pth").read_bytes() == b"good model"


def test_size_rejections_name_the_override_and_a_new_lineage_goes_live_only_when_accepted():
    small = decide(DataSize(3, 280, 300), FULL, None, PromotionPolicy())
    assert "RECSYS_FORCE_PUBLISH" in small.describe()
    worse = Evidence("held-back RMSE", candidate=2.3, current=0.6, fresh_ratings=5_000, lower_is_better=True)
    new = Lineage("new", 0.03, 0.02)
    refused = decide(FULL, FULL, [], PromotionPolicy(), lineage=new)
    assert not refused.publish and "RECSYS_ACCEPT_NEW_LINEAGE" in refused.describe()
    accepted = decide(FULL, FULL, [], PromotionPolicy(accept_new_lineage=True), lineage=new)
    assert accepted.publish and "the operator accepts new lineages" in accepted.describe()
    demo = decide(FULL, FULL, [], PromotionPolicy(), lineage=Lineage("new", 0.0, 0.0, published_sample=True))
    assert demo.publish and "replaces the generated demo sample" in demo.describe()
    rekeyed = decide(FULL, FULL, [worse], PromotionPolicy(), lineage=Lineage("rekeyed", 0.0, 1.0))
    assert not rekeyed.publish and "compared on the movies" in rekeyed.describe()
    assert not decide(FULL, FULL, [worse], PromotionPolicy()).publish


def test_tolerances_are_relative_so_a_nine_percent_drop_is_not_noise():
    """The shilling case of the hostile review: held-back NDCG@10 0.2228 -> 0.2020 passed 0.02 + 2 SE."""
    held = "ratings the published model held back"
    drop = Evidence("held-back NDCG@10", 0.2020, 0.2228, 5_000, False, on=held, standard_error=0.006)
    assert not decide(FULL, FULL, [drop], PromotionPolicy()).publish
    noisy = Evidence("held-back NDCG@10", 0.2020, 0.2228, 5_000, False, on=held, standard_error=0.02)
    assert decide(FULL, FULL, [noisy], PromotionPolicy()).publish  # within noise: not refused
    small = Evidence("held-back NDCG@10", 0.2180, 0.2228, 5_000, False, on=held, standard_error=0.001)
    assert decide(FULL, FULL, [small], PromotionPolicy()).publish  # 2% worse: within the 5% tolerance
    # the fresh ratings (chosen by the candidate's export, two held-out fits) weigh less: absolute 0.02 beyond noise
    fresh = Evidence("val NDCG@10", 0.2020, 0.2228, 5_000, False, standard_error=0.006)
    assert fresh.chosen_by_candidate and decide(FULL, FULL, [fresh], PromotionPolicy()).publish
    fresh_far = Evidence("val NDCG@10", 0.1700, 0.2228, 5_000, False, standard_error=0.006)
    assert not decide(FULL, FULL, [fresh_far], PromotionPolicy()).publish


def test_the_held_back_set_is_kept_out_of_every_fit():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"user_id": np.repeat(np.arange(50), 20), "movie_id": np.tile(np.arange(20), 50), "rating": 3.0}
    )
    frame["rating"] = rng.integers(1, 6, len(frame)).astype(float)
    train, val = frame.iloc[:800], frame.iloc[800:]
    first = plan_evaluation(train, val, None)
    assert len(first.heldback) == 50 and len(first.refit_val) == 150 and first.excluded == 0
    again = plan_evaluation(frame.iloc[200:], frame.iloc[:200], first.heldback)  # a re-split of the same export
    held_pairs = set(zip(first.heldback.users, first.heldback.movies))
    for part in (again.train, again.val, again.refit_val):
        assert not held_pairs & set(zip(part["user_id"], part["movie_id"]))
    assert again.excluded == 50
    same = np.arange(100)
    assert lineage(same, same, same, same).kind == "same"
    assert lineage(same, same, same + 1000, same).kind == "rekeyed"  # users renumbered, the same movies
    assert lineage(same, same, same + 1000, same + 1000).kind == "new"
    assert "different export lineage" in lineage(same, same, same + 1000, same + 1000).describe()
