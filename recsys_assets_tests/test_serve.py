"""`recsys serve`: the model server's reload rule (core/serving.py) and the real HTTP API in a subprocess."""

import json
import os
import shutil
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from recsys_assets.core.serving import RATING_FILE, ModelServer

from .conftest import background_process, free_port
from .model_files import hand_set_model_file, ranked_pair

RANKING_FILE = "ranking_model.pth"


def _publish(source_dir, data_dir) -> None:
    """Replace both published files atomically, one after the other (as a promotion does)."""
    for name in (RATING_FILE, RANKING_FILE):
        if (source_dir / name).exists():
            shutil.copy(source_dir / name, data_dir / f".{name}.tmp")
            os.replace(data_dir / f".{name}.tmp", data_dir / name)


def test_the_server_swaps_a_whole_pair_and_keeps_the_old_one_on_a_bad_load(tmp_path):
    first, second, data = tmp_path / "first", tmp_path / "second", tmp_path / "data"
    for folder in (first, second, data):
        folder.mkdir()
    ranked_pair(first)
    hand_set_model_file(second)  # a different rating model, no ranking model beside it
    server = ModelServer(str(data))
    assert not server.refresh() and server.current is None and "not found" in (server.last_error or "")
    _publish(first, data)
    assert server.refresh() and server.current is not None
    loaded = server.current
    assert loaded.recommender.ranker is not None and len(loaded.recommender.users) == 60
    assert not server.refresh() and server.current is loaded  # unchanged files: nothing reloaded
    (data / RATING_FILE).write_bytes(b"not a model")  # a broken file: the old pair stays
    assert not server.refresh() and server.current is loaded  # changed: waits for a second look
    assert not server.refresh() and server.current is loaded and server.last_error
    (data / RANKING_FILE).unlink()
    _publish(second, data)
    assert not server.refresh() and server.current is loaded  # mid-promotion as far as it knows
    assert server.refresh() and server.current is not loaded
    assert len(server.current.recommender.users) == 3 and server.current.recommender.ranker is None
    assert server.reloads == 2 and server.last_error is None


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _wait_until(predicate, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except OSError:  # not listening yet
            pass
        time.sleep(0.2)
    pytest.fail("the server did not reach the expected state in time")


def _hammer(url: str, stop: threading.Event, outcomes: list) -> None:
    while not stop.is_set():
        try:
            status, body = _get(url)
            outcomes.append((status, body.get("by")))
        except OSError as exc:
            outcomes.append((str(exc), None))


def test_serve_answers_over_http_and_swaps_models_without_a_failed_request(tmp_path):
    first, second, data = tmp_path / "first", tmp_path / "second", tmp_path / "data"
    for folder in (first, second, data):
        folder.mkdir()
    _, _, user_ids, movie_ids = ranked_pair(first)
    hand_set_model_file(second)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "recsys_assets.cli", "serve", "--data-dir", str(data), "--port", str(port)]
    with background_process([*args, "--reload-interval", "0.1"], dict(os.environ), tmp_path / "serve.log"):
        status, body = _wait_until(lambda: _get(f"{base}/health"))
        assert body["status"] == "no model" and "not found" in body["last_error"]
        assert _get(f"{base}/users/1/recommendations")[0] == 503
        _publish(first, data)
        _wait_until(lambda: _get(f"{base}/health")[1]["status"] == "ok")
        status, body = _get(f"{base}/users/{user_ids[0]}/recommendations?k=3")
        assert status == 200 and body["by"] == "ranking" and len(body["items"]) == 3
        assert {"rank", "movie_id", "score", "predicted_rating", "because_movie_id"} <= set(body["items"][0])
        status, body = _get(f"{base}/movies/{movie_ids[0]}/similar?k=2")
        assert status == 200 and len(body["items"]) == 2 and movie_ids[0] not in [i["movie_id"] for i in body["items"]]
        assert _get(f"{base}/movies/999999/similar")[0] == 404
        status, body = _post(f"{base}/recommendations", {"ratings": {str(movie_ids[20]): 5}, "k": 4})
        assert status == 200 and len(body["items"]) == 4 and body["fallback"] is None
        assert _post(f"{base}/recommendations", {"ratings": {str(movie_ids[20]): 99}})[0] == 422
        assert _get(f"{base}/users/1/recommendations?k=0")[0] == 422
        assert _get(f"{base}/users/{2**70}/recommendations")[0] == 422  # beyond int64: a clear 422, not a 500
        assert _post(f"{base}/recommendations", {"ratings": {str(2**70): 5}})[0] == 422
        stop, outcomes = threading.Event(), []
        workers = [threading.Thread(target=_hammer, args=(f"{base}/users/10/recommendations?k=2", stop, outcomes))]
        workers[0].start()
        time.sleep(0.5)
        (data / RANKING_FILE).unlink()  # the second pair has no ranking model
        _publish(second, data)
        _wait_until(lambda: _get(f"{base}/users/10/recommendations")[1]["by"] == "rating")
        time.sleep(0.3)
        stop.set()
        workers[0].join(timeout=30)
    assert len(outcomes) > 10 and all(status == 200 for status, _ in outcomes), [o for o in outcomes if o[0] != 200][:3]
    assert outcomes[0][1] == "ranking" and outcomes[-1][1] == "rating"  # the first pair, then the second
