"""`dagster dev` with the project's workspace.yaml serves the code location and its seven assets."""

import os
import sys
import time
from pathlib import Path

import pytest

from .conftest import CHAIN_KEYS, background_process, free_port, graphql, make_dagster_home

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
KEYS = set(CHAIN_KEYS)


def test_dagster_dev_serves_the_asset_graph(tmp_path, tiny_export):
    home = make_dagster_home(tmp_path / "home")
    port = free_port()
    env = dict(
        os.environ, DAGSTER_HOME=str(home), RECSYS_EXPORT_PATH=str(tiny_export), RECSYS_DATA_DIR=str(tmp_path / "data")
    )
    log = tmp_path / "dev.log"
    args = [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
    with background_process(args, env, log) as proc:
        deadline = time.monotonic() + 180
        keys, nodes = set(), []
        while time.monotonic() < deadline and not keys >= KEYS:
            time.sleep(2)
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                data = graphql(port, "{ assetNodes { assetKey { path } description groupName } }")
            except OSError:
                continue
            nodes = data.get("data", {}).get("assetNodes") or []
            keys = {"/".join(n["assetKey"]["path"]) for n in nodes}
        assert keys >= KEYS, log.read_text()[-3000:]
        assert all(n["description"] and n["groupName"] for n in nodes)
        sensors = graphql(
            port,
            '{ sensorsOrError(repositorySelector: {repositoryName: "__repository__", repositoryLocationName: "recsys_assets"}) '
            "{ ... on Sensors { results { name sensorState { status } } } } }",
        )
        states = {s["name"]: s["sensorState"]["status"] for s in sensors["data"]["sensorsOrError"]["results"]}
        assert states == {"new_export_sensor": "RUNNING"}
