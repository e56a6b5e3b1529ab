"""The `dg` CLI on this project, and commands the README shows that print no warning lines.

Each command runs in a subprocess, as a user runs it: pytest's own warning filters (pyproject.toml)
do not reach it, so a warning from the definitions or a step process shows in its output.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import ASSET_KEYS as KEYS_IN_ORDER
from .conftest import REPO_ROOT, background_process, free_port, graphql, make_dagster_home

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
ASSET_KEYS = set(KEYS_IN_ORDER)
SHORT_TRAINING = json.dumps({"ops": {"recommendation_model": {"config": {"epochs": 3}}}})
# Dagster's own notice that `dagster asset materialize` is superseded by `dg launch`: printed by the
# command itself before it loads any code, so no project can avoid it but by using `dg launch`.
MATERIALIZE_SUPERSEDED = "SupersessionWarning: Function `asset_materialize_command` is superseded"


def _env(tmp_path, export, data_dir) -> dict:
    """The environment the scripts set up: DAGSTER_HOME with deploy/local/dagster.yaml, .venv active."""
    home = make_dagster_home(tmp_path / "dagster_home")
    shutil.copy(REPO_ROOT / "deploy" / "local" / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env.update(
        DAGSTER_HOME=str(home),
        RECSYS_EXPORT_PATH=str(export),
        RECSYS_DATA_DIR=str(data_dir),
        RECSYS_DROP_DIR=str(tmp_path / "exports"),
        RECSYS_DEVICE="cpu",
        MPLBACKEND="Agg",
        VIRTUAL_ENV=sys.prefix,
    )  # dg warns when the active environment is not the project's .venv
    return env


def _run(args, env, timeout=600) -> str:
    proc = subprocess.run(
        [str(a) for a in args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{args} failed:\n{out[-6000:]}"
    return out


def _warning_lines(out: str, allowed: tuple[str, ...] = ()) -> list[str]:
    return [line for line in out.splitlines() if "Warning" in line and not any(a in line for a in allowed)]


def _materialized(home: Path) -> set[str]:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        return {name for name in ASSET_KEYS if instance.get_latest_materialization_event(dg.AssetKey(name))}


def test_dg_check_defs_and_list_defs(tmp_path, tiny_export):
    env = _env(tmp_path, tiny_export, tmp_path / "data")
    out = _run([BIN / "dg", "check", "defs"], env)
    assert "All definitions loaded successfully" in out
    assert _warning_lines(out) == []

    proc = subprocess.run(
        [str(BIN / "dg"), "list", "defs", "--json"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert _warning_lines(proc.stderr) == []
    listed = json.loads(proc.stdout)
    assert {a["asset_key"] for a in listed["assets"]} == ASSET_KEYS
    assert {r["name"] for r in listed["resources"]} == {"storage", "device", "io_manager"}
    assert [j["name"] for j in listed["jobs"]] == ["retrain_model"]
    assert [s["name"] for s in listed["sensors"]] == ["new_export_sensor"]
    assert [s["name"] for s in listed["schedules"]] == ["retrain_schedule"]


def test_dg_dev_serves_the_code_location(tmp_path):
    # no export anywhere: the sensor (on by default) only skips, so no run starts while the test looks
    env = _env(tmp_path, tmp_path / "no_export.csv", tmp_path / "data")
    port = free_port()
    log = tmp_path / "dg_dev.log"
    with background_process([str(BIN / "dg"), "dev", "-h", "127.0.0.1", "-p", str(port)], env, log) as proc:
        deadline = time.monotonic() + 180
        keys: set[str] = set()
        while time.monotonic() < deadline and keys != ASSET_KEYS:
            time.sleep(2)
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                nodes = graphql(port, "{ assetNodes { assetKey { path } } }").get("data", {}).get("assetNodes") or []
            except OSError:
                continue
            keys = {"/".join(n["assetKey"]["path"]) for n in nodes}
        assert keys == ASSET_KEYS, log.read_text()[-3000:]
        # the local instance file gives the pools a limit (no "does not have any slots configured")
        pool = graphql(port, '{ instance { concurrencyLimit(concurrencyKey: "recsys_training") { limit } } }')
        assert pool["data"]["instance"]["concurrencyLimit"]["limit"] == 1
    assert _warning_lines(log.read_text()) == []
