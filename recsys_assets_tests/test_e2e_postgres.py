"""The shipped PostgreSQL instance (deploy/postgres/dagster.yaml) on a real local PostgreSQL server.

The server is Debian's package (``scripts/test.sh`` installs it when missing), started on loopback
in a temp folder for this module. The full chain runs through the real CLI, the real daemon ticks
the sensor, and the test reads runs, materializations and ticks back from PostgreSQL itself.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from recsys_assets.core.sample_data import SampleSpec, write_sample_export

from .conftest import ASSET_KEYS, REPO_ROOT, background_process
from .servers import pg_query, postgres_server

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
ASSETS = set(ASSET_KEYS)


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server on 127.0.0.1 with a password-protected database for Dagster."""
    with postgres_server() as pg:
        yield pg


def test_full_chain_and_sensor_ticks_are_recorded_in_postgres(postgres, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "deploy" / "postgres" / "dagster.yaml", home / "dagster.yaml")  # the shipped file, as is
    db = yaml.safe_load((home / "dagster.yaml").read_text())["storage"]["postgres"]["postgres_db"]
    assert all(set(v) == {"env"} for k, v in db.items() if k != "scheme"), "credentials come from the environment"
    data = tmp_path / "data"
    export = write_sample_export(
        data / "ratings_export.csv", SampleSpec(n_ratings=3_000, n_users=100, n_movies=300, seed=9)
    )
    env = dict(
        os.environ,
        **postgres,
        DAGSTER_HOME=str(home),
        RECSYS_DATA_DIR=str(data),
        RECSYS_EXPORT_PATH=str(export),
        RECSYS_DEVICE="cpu",
        RECSYS_SENSOR_INTERVAL="1",
        MPLBACKEND="Agg",
    )

    out = subprocess.run(
        [str(BIN / "dagster"), "asset", "materialize", "--select", "*", "-m", "recsys_assets.definitions"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (data / "recommendation_model.pth").exists()

    # what Dagster recorded, read from PostgreSQL itself
    assert pg_query(postgres, "SELECT status FROM runs") == [("SUCCESS",)]
    materialized = {
        row[0]
        for row in pg_query(
            postgres, "SELECT asset_key FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
        )
    }
    assert {f'["{name}"]' for name in ASSETS} == materialized
    checks = pg_query(postgres, "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_CHECK_EVALUATION'")
    assert checks[0][0] >= 10
    assert not list(home.rglob("*.db")), "nothing may fall back to sqlite"

    # the real daemon ticks the sensor; it reads the last ingest from PostgreSQL and skips this export
    log = tmp_path / "daemon.log"
    with background_process([str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], env, log):
        deadline, ticks = time.monotonic() + 180, []
        while time.monotonic() < deadline:
            ticks = pg_query(postgres, "SELECT status, tick_body FROM job_ticks")
            if any("already ingested" in body for _, body in ticks):
                break
            time.sleep(2)
    assert any(status == "SKIPPED" and "already ingested" in body for status, body in ticks), (
        ticks,
        log.read_text()[-3000:],
    )
    assert len(pg_query(postgres, "SELECT run_id FROM runs")) == 1  # no second run for the same export
