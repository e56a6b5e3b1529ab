"""The release wing called directly: one pointer switches the live pair, a crash leaves one whole pair,
rollback refuses to cross lineages, and a new go-live rule is one function in core/release/gates.py."""

import pytest

from recsys_assets.core.artifact_store import ArtifactStore
from recsys_assets.core.release import gates, live, registry
from recsys_assets.core.release.candidate import RANKING_FILE, RATING_FILE, Candidate
from recsys_assets.core.release.decision import Promotion
from recsys_assets.core.release.history import ModelHistory
from recsys_assets.core.release.versions_table import version_rows


def _candidate(name: str, content: bytes, fingerprint: str, **record) -> Candidate:
    return Candidate(name, lambda path: path.write_bytes(content), lambda path: None, record, fingerprint)


def _publish_pair(store, tmp_path, tag: str, **record):
    for name in (RATING_FILE, RANKING_FILE):
        candidate = _candidate(name, f"{name} {tag}".encode(), f"data-{tag}", **record)
        registry.publish(store, candidate, True, keep=5, work_folder=tmp_path / "work")


def _live_pair(store) -> tuple[bytes, bytes]:
    """What every reader gets: each live model resolved through the pointer."""
    return tuple(store.read_bytes(live.resolve(store, name)) for name in (RATING_FILE, RANKING_FILE))


class Crash(BaseException):
    """A SIGKILL stand-in: nothing after it runs, no handler catches it."""


def test_a_crash_between_the_two_copies_leaves_the_new_pair_whole(tmp_path, monkeypatch):
    store = ArtifactStore(tmp_path / "data")
    _publish_pair(store, tmp_path, "A")
    assert _live_pair(store) == (b"recommendation_model.pth A", b"ranking_model.pth A")
    calls = []
    real = ModelHistory.refresh_copy

    def dies_after_one(self, local):
        if calls:
            raise Crash
        calls.append(self.name)
        real(self, local)

    monkeypatch.setattr(ModelHistory, "refresh_copy", dies_after_one)
    with pytest.raises(Crash):
        _publish_pair(store, tmp_path, "B")
    monkeypatch.setattr(ModelHistory, "refresh_copy", real)
    assert _live_pair(store) == (b"recommendation_model.pth B", b"ranking_model.pth B")  # one whole pair
    assert registry.repair(store)  # the next publish or rollback brings the copies in line
    assert [store.read_bytes(n) for n in (RATING_FILE, RANKING_FILE)] == list(_live_pair(store))


def test_a_crash_before_the_switch_leaves_the_old_pair_whole(tmp_path, monkeypatch):
    store = ArtifactStore(tmp_path / "data")
    _publish_pair(store, tmp_path, "A")

    def dies(*args, **kwargs):
        raise Crash

    monkeypatch.setattr(live, "write", dies)
    with pytest.raises(Crash):
        _publish_pair(store, tmp_path, "B")
    assert _live_pair(store) == (b"recommendation_model.pth A", b"ranking_model.pth A")
    assert ModelHistory(store, RATING_FILE).current() == "v0001"


def test_rollback_refuses_the_demo_sample_and_another_lineage_without_force(tmp_path):
    store = ArtifactStore(tmp_path / "data")
    validators = dict.fromkeys((RATING_FILE, RANKING_FILE), lambda path: None)
    _publish_pair(store, tmp_path, "demo", sample_export=True, lineage_kind="first")
    _publish_pair(store, tmp_path, "real", lineage_kind="new")
    rows = {(r["model"], r["version"]): r["lineage"] for r in version_rows(store)}
    assert rows[("rating", "v0001")] == "demo sample" and rows[("rating", "v0002")] == ""
    with pytest.raises(ValueError, match="generated demo sample.*--force"):
        registry.rollback(store, RATING_FILE, None, validators, work_folder=tmp_path / "work")
    assert _live_pair(store) == (b"recommendation_model.pth real", b"ranking_model.pth real")
    _publish_pair(store, tmp_path, "other", lineage_kind="new")  # a second real export, unrelated ids
    with pytest.raises(ValueError, match="another export lineage"):
        registry.rollback(store, RATING_FILE, "v2", validators, work_folder=tmp_path / "work")
    restored = registry.rollback(store, RATING_FILE, "v2", validators, work_folder=tmp_path / "work", force=True)
    assert [name for name, _ in restored] == [RATING_FILE, RANKING_FILE]  # the pair, in one switch
    assert _live_pair(store) == (b"recommendation_model.pth real", b"ranking_model.pth real")


def test_a_version_of_the_same_lineage_inherits_it(tmp_path):
    store = ArtifactStore(tmp_path / "data")
    _publish_pair(store, tmp_path, "one", lineage_kind="first")
    _publish_pair(store, tmp_path, "two", lineage_kind="same")
    versions = ModelHistory(store, RATING_FILE).versions()
    assert versions[0].record["lineage"] == versions[1].record["lineage"] == "data-one"


def test_a_new_go_live_rule_is_one_function_in_gates(monkeypatch):
    """The example the issue asks for: refuse any rating model whose validation RMSE is above 1.0."""

    def rmse_at_most_one(facts: gates.Facts) -> str | None:
        rmse = facts.metrics.get("val_rmse", 0.0)
        return f"val RMSE {rmse:.2f} is above 1.0" if facts.model == "rating" and rmse > 1.0 else None

    facts = gates.rating_facts({"val_rmse": 1.2, "global_mean_rmse": 1.3}, finite=True)
    assert gates.verdict(facts, Promotion(True)).publish
    monkeypatch.setattr(gates, "RULES", [*gates.RULES, rmse_at_most_one])
    refused = gates.verdict(facts, Promotion(True))
    assert not refused.publish and refused.rejection == "val RMSE 1.20 is above 1.0"


def test_models_lists_null_and_odd_records_and_names_a_truncated_file(tmp_path, capsys):
    import json

    from recsys_assets.cli import main

    store = ArtifactStore(tmp_path / "data")
    for k in range(3):
        _publish_pair(store, tmp_path, f"v{k}", metrics={"val_rmse": 0.9}, data={"n_users": 3})
    folder = tmp_path / "data" / "models" / "recommendation_model"
    for name, change in (("v0001", {"metrics": None, "data": None}), ("v0002", {"metrics": {"val_rmse": "0.8"}})):
        record = json.loads((folder / f"{name}.json").read_text())
        (folder / f"{name}.json").write_text(json.dumps({**record, **change}))
    (folder / "v0003.pth").write_bytes((folder / "v0003.pth").read_bytes()[:5])  # truncated
    assert main(["models", "--data-dir", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    assert " v0001" in out and " v0002" in out and "Traceback" not in out
    assert "v0003.pth does not match its recorded sha256 (truncated or replaced)" in out
    rows = [r for r in version_rows(store) if r["model"] == "rating"]
    assert {r["version"]: r["value"] for r in rows} == {"v0003": 0.9, "v0002": None, "v0001": None}
