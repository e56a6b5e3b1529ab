"""The code location is whatever recsys_assets/defs defines, loaded the way dg loads a project."""

import dagster as dg

from recsys_assets import definitions
from recsys_assets.definitions import ASSETS, build_definitions, defs
from recsys_assets.defs import checks

from .conftest import ASSET_KEYS

KEYS = set(ASSET_KEYS)


def _keys(d: dg.Definitions) -> set[str]:
    return {k.to_user_string() for k in d.resolve_asset_graph().get_all_asset_keys()}


def test_the_defs_folder_is_the_code_location():
    loaded = defs()  # the @dg.definitions entry point that dg, `dagster -m` and workspace.yaml load
    assert _keys(loaded) == KEYS
    assert set(loaded.resources) == {"storage", "device", "io_manager"}  # from defs/resources.py
    standalone = {key for c in (checks.cleaned_ratings_checks, checks.split_checks) for key in c.check_keys}
    assert standalone <= set(loaded.resolve_asset_graph().asset_check_keys)  # from defs/checks.py
    assert [j.name for j in loaded.jobs] == ["retrain_model"]  # and defs/automation.py
    dg.Definitions.validate_loadable(loaded)
    assert {k.to_user_string() for a in ASSETS for k in a.keys} == KEYS  # the in-process list covers the chain


def test_without_pyproject_the_same_folder_loads(tmp_path, monkeypatch):
    """An installed wheel has no pyproject.toml next to the package: the folder loads from the package."""
    monkeypatch.setattr(definitions, "PACKAGE_DIR", tmp_path / "recsys_assets")
    assert _keys(build_definitions()) == KEYS


def test_selecting_everything_does_not_warn():
    import warnings

    graph = defs().resolve_asset_graph()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert {k.to_user_string() for k in dg.AssetSelection.from_coercible(["*"]).resolve(graph)} == KEYS
