"""The shipped PostgreSQL instance (deploy/postgres/dagster.yaml) on a real local PostgreSQL server.

The server is Debian's package (``scripts/test.sh`` installs it when missing), started on loopback
in a temp folder for this module. The full chain runs through the real CLI, the real daemon ticks
the sensor, and the test reads runs, materializations and ticks back from PostgreSQL itself.
"""

import glob
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from recsys_assets.core.sample_data import SampleSpec, write_sample_export

from .conftest import ASSET_KEYS, REPO_ROOT, background_process, free_port

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
ASSETS = set(ASSET_KEYS)


def _pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server on 127.0.0.1 with a password-protected database for Dagster."""
    psycopg2 = pytest.importorskip("psycopg2")
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="recsys-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as Debian's postgres user
        shutil.chown(root, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    user, password, port = "recsys", secrets.token_hex(12), free_port()
    pwfile = root / "pw"
    pwfile.write_text(password)
    if as_postgres:
        shutil.chown(pwfile, "postgres", "postgres")
    run = lambda *args: subprocess.run([*as_postgres, *map(str, args)], check=True, capture_output=True, text=True)  # noqa: E731
    run(bindir / "initdb", "-D", root / "data", "-U", user, f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8")
    run(
        bindir / "pg_ctl",
        "-D",
        root / "data",
        "-l",
        root / "server.log",
        "-w",
        "-t",
        "60",
        "start",
        "-o",
        f"-c listen_addresses=127.0.0.1 -p {port} -k {root}",
    )
    try:
        conn = psycopg2.connect(host="127.0.0.1", port=port, user=user, password=password, dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE dagster")
        conn.close()
        yield {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(port),
            "DAGSTER_PG_USERNAME": user,
            "DAGSTER_PG_PASSWORD": password,
            "DAGSTER_PG_DB": "dagster",
        }
    finally:
        subprocess.run(
            [*as_postgres, str(bindir / "pg_ctl"), "-D", str(root / "data"), "-m", "fast", "-w", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def _query(pg: dict, sql: str, *params) -> list[tuple]:
    import psycopg2

    with (
        psycopg2.connect(
            host=pg["DAGSTER_PG_HOST"],
            port=pg["DAGSTER_PG_PORT"],
            user=pg["DAGSTER_PG_USERNAME"],
            password=pg["DAGSTER_PG_PASSWORD"],
            dbname=pg["DAGSTER_PG_DB"],
        ) as conn,
        conn.cursor() as cur,
    ):
        cur.execute(sql, params)
        return cur.fetchall()


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
    assert _query(postgres, "SELECT status FROM runs") == [("SUCCESS",)]
    materialized = {
        row[0]
        for row in _query(
            postgres, "SELECT asset_key FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
        )
    }
    assert {f'["{name}"]' for name in ASSETS} == materialized
    checks = _query(postgres, "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_CHECK_EVALUATION'")
    assert checks[0][0] >= 10
    assert not list(home.rglob("*.db")), "nothing may fall back to sqlite"

    # the real daemon ticks the sensor; it reads the last ingest from PostgreSQL and skips this export
    log = tmp_path / "daemon.log"
    with background_process([str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], env, log):
        deadline, ticks = time.monotonic() + 180, []
        while time.monotonic() < deadline:
            ticks = _query(postgres, "SELECT status, tick_body FROM job_ticks")
            if any("already ingested" in body for _, body in ticks):
                break
            time.sleep(2)
    assert any(status == "SKIPPED" and "already ingested" in body for status, body in ticks), (
        ticks,
        log.read_text()[-3000:],
    )
    assert len(_query(postgres, "SELECT run_id FROM runs")) == 1  # no second run for the same export
