import contextlib
import json
import os
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

from recsys_assets import settings
from recsys_assets.core.sample_data import SampleSpec, write_sample_export

REPO_ROOT = Path(__file__).resolve().parents[1]
ML_SMALL = settings.movielens_dir()  # RECSYS_MOVIELENS_DIR, else ../shared/datasets/ml-latest-small
# the documented asset keys, in pipeline order: the chain to the loss plot, then the ranking side
CHAIN_KEYS = [
    "raw_ratings",
    "cleaned_ratings",
    "user_movie_mappings",
    "train_ratings",
    "val_ratings",
    "recommendation_model",
    "training_loss_plot",
]
ASSET_KEYS = [*CHAIN_KEYS, "ranking_model", "user_recommendations", "model_evaluation", "model_versions"]
TINY = SampleSpec(n_ratings=4_000, n_users=120, n_movies=400, seed=7)


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    """POST ``query`` to the Dagster webserver's GraphQL endpoint on loopback ``port``; the decoded reply."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def ml_small_ratings() -> Path:
    path = ML_SMALL / "ratings.csv"
    if not path.exists():
        pytest.skip(f"MovieLens ml-latest-small not present at {path}")
    return path


@pytest.fixture
def tiny_export(tmp_path) -> Path:
    """A small synthetic export in MovieLens format."""
    return write_sample_export(tmp_path / "ratings_export.csv", TINY)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def dagster_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def _isolate_env(monkeypatch):
    from recsys_assets import settings

    for setting in settings.SETTINGS:  # every variable the project reads, except DAGSTER_HOME
        if setting.name.startswith("RECSYS_"):
            monkeypatch.delenv(setting.name, raising=False)
    # no settings file (a developer's recsys.env at the repo root must not reach the processes tests start)
    monkeypatch.setenv(settings.SETTINGS_FILE.name, os.devnull)
    os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _fresh_defs_state_storage():
    """Dagster keeps the current instance's defs-state storage in a context variable, and an
    instance that is garbage-collected late restores an older, dead one into it, which breaks
    the next materialize ("undefined DagsterInstance weakref"). Collect such instances before
    each test and start it without a storage."""
    import gc

    from dagster._core.storage.defs_state import base

    gc.collect()
    base._current_storage.set(None)
    yield
    base._current_storage.set(None)


@pytest.fixture
def model_file(tmp_path):
    """A small rating model file with hand-set weights (recsys_assets_tests/model_files.py)."""
    from .model_files import hand_set_model_file

    return hand_set_model_file(tmp_path)


# --- helpers for the end-to-end tests that start real Dagster processes --------------------------
def make_dagster_home(path: Path) -> Path:
    """A DAGSTER_HOME folder with telemetry off and its sqlite storages already created.

    A daemon, a code server and a run that start together on an empty home each create the
    databases and stamp their schema version; racing, two of them can stamp it twice
    ("alembic_version has more than one head"), which breaks every later load of the code.
    """
    import dagster as dg

    path.mkdir(parents=True, exist_ok=True)
    (path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.from_config(str(path)) as instance:
        instance.run_storage, instance.event_log_storage, instance.schedule_storage  # noqa: B018 - creates them
    return path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def background_process(args: list[str], env: dict, log: Path):
    """Run ``args`` from the repo root in its own process group; stop the whole group on exit."""
    with open(log, "w") as out:
        proc = subprocess.Popen(
            args, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):  # the test may have killed the group already
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


# --- test tiers: the fast tier (unit and defs tests) runs first, then the end-to-end tier (marked e2e) ----
# With pytest-xdist (scripts/test.sh runs two workers) each worker keeps its own state, so a fast-tier failure
# is also written to a flag file that every worker reads before an end-to-end test.
_TIERS: dict = {"fast_failed": False, "first_e2e": None, "config": None, "flag": None}


def _is_e2e(item) -> bool:
    return item.get_closest_marker("e2e") is not None


def pytest_configure(config):
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:  # an xdist worker: the controller named the flag file
        _TIERS["flag"] = Path(workerinput["recsys_tier_flag"])
    elif config.pluginmanager.hasplugin("xdist"):
        import tempfile

        _TIERS["flag"] = Path(tempfile.mkdtemp(prefix="recsys-tiers-")) / "fast-tier-failed"
    _TIERS["config"] = config


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist (controller): hand each worker the flag file."""
    node.workerinput["recsys_tier_flag"] = str(_TIERS["flag"])


def pytest_collection_modifyitems(config, items):
    """Order the collected tests fast tier first (a stable sort keeps each tier's file order)."""
    items.sort(key=_is_e2e)
    _TIERS.update(first_e2e=next((item.nodeid for item in items if _is_e2e(item)), None))


def _fast_failed() -> bool:
    return _TIERS["fast_failed"] or (_TIERS["flag"] is not None and _TIERS["flag"].exists())


def pytest_runtest_logstart(nodeid, location):
    """Announce the end-to-end tier before its first test."""
    reporter = _TIERS["config"].pluginmanager.get_plugin("terminalreporter") if _TIERS["config"] else None
    if nodeid == _TIERS["first_e2e"] and reporter is not None:
        skipped = ": skipped, the fast tier failed" if _fast_failed() else ""
        reporter.ensure_newline()
        reporter.write_sep("-", f"end-to-end tier (e2e){skipped}")


def pytest_runtest_logreport(report):
    if report.failed and "e2e" not in report.keywords:
        _TIERS["fast_failed"] = True
        if _TIERS["flag"] is not None:
            _TIERS["flag"].touch()


def pytest_runtest_setup(item):
    """Skip the end-to-end tier when the fast tier failed (fix those first: they are quicker to rerun)."""
    if _is_e2e(item) and _fast_failed():
        pytest.skip("the fast tier failed, so the end-to-end tier is not run (pytest -m e2e runs it alone)")
