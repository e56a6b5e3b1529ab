"""Retraining with nobody at the keyboard: the real dagster-daemon, its sensor and its run launcher."""

import hashlib
import os
import sys
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from recsys_assets.core.sample_data import SampleSpec, write_sample_export

from .conftest import background_process, make_dagster_home

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
TERMINAL = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def _wait_for_runs(instance, count: int, timeout: float, log: Path) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"recsys/trigger": "new_export_sensor"}))
        done = [r for r in runs if r.status in TERMINAL]
        if len(done) >= count:
            return list(reversed(done))  # get_runs lists the newest first
        time.sleep(2)
    raise AssertionError(f"no {count} finished sensor run(s) within {timeout}s; daemon log:\n{log.read_text()[-4000:]}")


def _check_results(instance, run_id) -> dict:
    events = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    return {
        e.dagster_event.asset_check_evaluation_data.check_name: e.dagster_event.asset_check_evaluation_data.passed
        for e in events
    }


def test_daemon_retrains_on_a_new_export_and_blocks_a_bad_one(tmp_path, monkeypatch):
    home, data, drop = make_dagster_home(tmp_path / "home"), tmp_path / "data", tmp_path / "data" / "exports"
    drop.mkdir(parents=True)
    env = dict(
        os.environ,
        DAGSTER_HOME=str(home),
        RECSYS_DATA_DIR=str(data),
        RECSYS_EXPORT_PATH=str(data / "ratings_export.csv"),
        RECSYS_SENSOR_INTERVAL="2",
        RECSYS_DEVICE="cpu",
        MPLBACKEND="Agg",
        # the executor is not under test here: one process per run instead of one per step
        RECSYS_EXECUTOR="in_process",
    )
    log = tmp_path / "daemon.log"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with background_process([str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], env, log):
        write_sample_export(drop / "2026-11-01.csv", SampleSpec(n_ratings=3_000, n_users=100, n_movies=300, seed=4))
        with dg.DagsterInstance.get() as instance:
            (good,) = _wait_for_runs(instance, 1, 420, log)
            assert good.status == dg.DagsterRunStatus.SUCCESS, log.read_text()[-4000:]
            checks = _check_results(instance, good.run_id)
            assert len(checks) == 13 and all(checks.values()), checks
            model = data / "recommendation_model.pth"
            digest = hashlib.sha256(model.read_bytes()).hexdigest()

            # a newer export with no collaborative signal: training runs, its blocking check fails
            rng = np.random.default_rng(0)
            bad = drop / "2026-11-02.csv"
            bad.with_suffix(".csv.part").write_text(
                "userId,movieId,rating,timestamp\n"
                + "".join(f"{k},{k},{rng.integers(1, 11) / 2},{k}\n" for k in range(1, 3001))
            )
            bad.with_suffix(".csv.part").rename(bad)
            runs = _wait_for_runs(instance, 2, 420, log)
            second = runs[-1]
            assert second.status == dg.DagsterRunStatus.FAILURE
            assert second.tags["recsys/export"] == str(bad)
            assert _check_results(instance, second.run_id)["beats_global_mean"] is False
            assert hashlib.sha256(model.read_bytes()).hexdigest() == digest
