"""The web UI in a real browser, and the GraphQL API, against a real `dagster dev` server.

Needs Debian's chromium (/usr/bin/chromium) and the playwright package; scripts/test.sh installs both.
Screenshots go to test-output/.
"""

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from recsys_assets.core.sample_data import SampleSpec, write_sample_export

from .conftest import CHAIN_KEYS, REPO_ROOT, background_process, free_port, graphql, make_dagster_home

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = REPO_ROOT / "test-output" / "browser"
KEYS = CHAIN_KEYS
# JavaScript: true when the element is inside the window and inside every scroll box around it, unscrolled
IN_VIEW = """el => {
  const r = el.getBoundingClientRect();
  if (r.width === 0 || r.top < 0 || r.left < 0 || r.bottom > innerHeight + 1 || r.right > innerWidth + 1) return false;
  for (let p = el.parentElement; p; p = p.parentElement) {
    if (!/(auto|scroll|hidden)/.test(getComputedStyle(p).overflowX + getComputedStyle(p).overflowY)) continue;
    const q = p.getBoundingClientRect();
    if (r.left < q.left - 1 || r.right > q.right + 1 || r.top < q.top - 1 || r.bottom > q.bottom + 1) return false;
  }
  return true;
}"""
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _run_status(port: int, run_id: str) -> str:
    data = graphql(port, "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", {"id": run_id})
    return data["data"]["runOrError"]["status"]


def _wait_for_run(port: int, run_id: str, timeout: float = 420) -> str:
    deadline = time.monotonic() + timeout
    status = "?"
    while time.monotonic() < deadline:
        status = _run_status(port, run_id)
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return status
        time.sleep(3)
    return status


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ui")
    home, data = make_dagster_home(tmp / "home"), tmp / "data"
    export = write_sample_export(
        data / "ratings_export.csv", SampleSpec(n_ratings=4_000, n_users=120, n_movies=400, seed=7)
    )
    port = free_port()
    env = dict(
        os.environ,
        DAGSTER_HOME=str(home),
        RECSYS_EXPORT_PATH=str(export),
        RECSYS_DATA_DIR=str(data),
        RECSYS_SENSOR_INTERVAL="3600",
        RECSYS_DEVICE="cpu",
        MPLBACKEND="Agg",
        # the executor is not under test here: one process per run instead of one per step
        RECSYS_EXECUTOR="in_process",
    )
    log = tmp / "dev.log"
    # dagster dev runs the webserver and the daemon, which dequeues launched runs
    args = [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
    with background_process(args, env, log) as proc:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                nodes = graphql(port, "{ assetNodes { id } }")["data"]["assetNodes"]
                if len(nodes) >= len(KEYS):
                    break
            except (OSError, KeyError, TypeError):
                pass
            time.sleep(2)
        else:
            raise AssertionError("dagster dev did not come up:\n" + log.read_text()[-3000:])
        yield {"port": port, "data": data, "log": log}


def test_dagster_dev_serves_the_asset_graph(server):
    """`dagster dev -w workspace.yaml` serves every asset with its description and group, and the sensor runs."""
    port = server["port"]
    nodes = graphql(port, "{ assetNodes { assetKey { path } description groupName } }")["data"]["assetNodes"]
    assert {"/".join(n["assetKey"]["path"]) for n in nodes} >= set(KEYS)
    assert all(n["description"] and n["groupName"] for n in nodes)
    sensors = graphql(
        port,
        '{ sensorsOrError(repositorySelector: {repositoryName: "__repository__", repositoryLocationName: "recsys_assets"}) '
        "{ ... on Sensors { results { name sensorState { status } } } } }",
    )
    states = {s["name"]: s["sensorState"]["status"] for s in sensors["data"]["sensorsOrError"]["results"]}
    assert states == {"new_export_sensor": "RUNNING"}


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (scripts/test.sh installs it)"
)
def test_materialize_all_from_the_browser(server):
    sync_api = pytest.importorskip("playwright.sync_api")
    port = server["port"]
    base = f"http://127.0.0.1:{port}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(60_000)
        try:
            page.goto(f"{base}/asset-groups", wait_until="networkidle")
            skip = page.get_by_role("button", name="Skip")  # the "Join the Dagster community" dialog
            skip.wait_for(timeout=15_000)
            skip.click()
            page.get_by_text("evaluation", exact=True).first.wait_for()
            # expand the four groups in the asset tree: every asset is listed by name
            for caret in page.locator('[aria-label="arrow_drop_down"]').all()[:4]:
                caret.click()
            for key in KEYS:
                page.locator(f'[title="{key}"]').first.wait_for()
            page.screenshot(path=str(SHOTS / "1-asset-graph.png"))

            page.get_by_role("button", name="Materialize all").click()
            toast = page.get_by_text("Launched run")
            toast.wait_for()
            page.screenshot(path=str(SHOTS / "2-launched.png"))
            runs = graphql(port, "{ runsOrError(limit: 1) { ... on Runs { results { runId } } } }")
            run_id = runs["data"]["runsOrError"]["results"][0]["runId"]
            status = _wait_for_run(port, run_id)
            assert status == "SUCCESS", server["log"].read_text()[-4000:]

            page.goto(f"{base}/assets/recommendation_model", wait_until="networkidle")
            page.get_by_text("val_rmse", exact=True).first.wait_for()
            page.screenshot(path=str(SHOTS / "3-recommendation-model.png"), full_page=True)

            # at 1400 x 900, a laptop's screen: each figure is on the asset page itself, in the first screen
            page.set_viewport_size({"width": 1400, "height": 900})
            for asset, shot in (("training_loss_plot", "4-training-loss-plot"), ("model_evaluation", "5-evaluation")):
                page.goto(f"{base}/assets/{asset}", wait_until="networkidle")
                image = page.locator('img[src^="data:image/png"]').first
                image.wait_for()
                width, height, complete = image.evaluate("i => [i.naturalWidth, i.naturalHeight, i.complete]")
                assert complete and width >= 40 and height >= 10
                page.screenshot(path=str(SHOTS / f"{shot}.png"))
                assert image.evaluate(IN_VIEW), f"{asset}: the figure is not in the first screen"
            # model_evaluation's chart is labelled: each ranker's name and value in the row of its bar
            for label in ("ranking model", "rating model (MF)", "most popular"):
                bar_row = page.locator(
                    f'xpath=//tr[td[normalize-space()="{label}"] and .//img[starts-with(@src, "data:image/png")]]'
                ).first
                value = bar_row.locator("td").nth(1).inner_text().strip()
                assert 0 <= float(value) <= 1, (label, value)
                assert bar_row.evaluate(IN_VIEW), f"{label}'s bar is not in the first screen"
            chart_row = page.locator("tr").filter(has=page.get_by_text("chart", exact=True))
            chart_row.get_by_text("[Show Markdown]").first.click()  # the full-size figure, one click away
            page.get_by_role("img", name="Rankers side by side").wait_for()
            page.keyboard.press("Escape")

            page.goto(f"{base}/assets/model_versions", wait_until="networkidle")
            page.get_by_text("v0001", exact=True).first.wait_for()  # the versions table, shown inline
            page.screenshot(path=str(SHOTS / "6-model-versions.png"))
            for column in ("metric", "value"):  # not cut off by the table's scroll box at 1400 px
                header = page.get_by_text(column, exact=True).first
                assert header.evaluate(IN_VIEW), f"model_versions: the {column} column is cut off at 1400 px"
            assert page.get_by_text("val_ndcg_at_10", exact=True).first.evaluate(IN_VIEW)
        except Exception:
            page.screenshot(path=str(SHOTS / "failure.png"))
            raise
        finally:
            browser.close()


def test_launch_a_run_through_the_graphql_client(server):
    from dagster_graphql import DagsterGraphQLClient

    client = DagsterGraphQLClient("127.0.0.1", port_number=server["port"])
    run_id = client.submit_job_execution(
        "retrain_model", repository_location_name="recsys_assets", repository_name="__repository__"
    )
    deadline = time.monotonic() + 420
    status = None
    while time.monotonic() < deadline:
        status = client.get_run_status(run_id).value
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(3)
    assert status == "SUCCESS", server["log"].read_text()[-4000:]
    assert (server["data"] / "recommendation_model.pth").exists()
