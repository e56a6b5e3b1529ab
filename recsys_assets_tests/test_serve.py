"""`recsys serve`: the model server's reload rule (core/serving.py) and the real HTTP API in a subprocess."""

import json
import os
import shutil
import subprocess
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
    """Replace both published files atomically, one after the other (as a promotion does); the ranking file
    first, so that a server looking between the two never finds a rating file alone on a first publish (on a
    loaded machine it could see that half stay unchanged for two looks and serve it)."""
    for name in (RANKING_FILE, RATING_FILE):
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


def test_serve_with_two_worker_processes_answers_from_each(tmp_path):
    """``recsys serve --workers 2``: two processes, each with the pair loaded and its lists looked up."""
    source, data = tmp_path / "source", tmp_path / "data"
    source.mkdir(), data.mkdir()
    _, _, user_ids, _ = ranked_pair(source)
    _publish(source, data)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "recsys_assets.cli", "serve", "--data-dir", str(data), "--port", str(port)]
    with background_process([*args, "--workers", "2"], dict(os.environ), tmp_path / "serve.log") as proc:
        _wait_until(lambda: _get(f"{base}/health")[1]["status"] == "ok")
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) >= 2, children  # uvicorn's supervisor and its two worker processes
        answers = [_get(f"{base}/users/{user_ids[0]}/recommendations") for _ in range(30)]  # spread over both
    assert all(status == 200 for status, _ in answers)
    assert len({json.dumps(body["items"]) for _, body in answers}) == 1  # the same list from either process
    assert "2 worker processes" in (tmp_path / "serve.log").read_text()


def _app_over(tmp_path):
    """The API over a real ModelServer that has loaded a good pair (no watcher thread: the tests refresh)."""
    from fastapi.testclient import TestClient

    from recsys_assets.api import create_app

    source, data = tmp_path / "source", tmp_path / "data"
    source.mkdir(), data.mkdir()
    _, _, user_ids, movie_ids = ranked_pair(source)
    _publish(source, data)
    server = ModelServer(str(data))
    assert server.refresh()
    return server, TestClient(create_app(server)), data, movie_ids


@pytest.mark.parametrize("damage", ["garbage", "unsafe pickle", "mismatched pair"])
def test_health_says_stale_while_the_published_files_do_not_load(tmp_path, damage):
    import argparse

    import torch

    server, client, data, movie_ids = _app_over(tmp_path)
    assert client.get("/health").json()["status"] == "ok"
    if damage == "garbage":
        (data / RATING_FILE).write_bytes(b"not a model")
    elif damage == "unsafe pickle":  # PyTorch's answer advises weights_only=False and allowlisting
        torch.save({"config": argparse.Namespace()}, data / RATING_FILE)
    else:  # each file says it was trained on another export
        for name, part, export in ((RATING_FILE, "config", "a"), (RANKING_FILE, "info", "b")):
            payload = torch.load(data / name, weights_only=True)
            payload[part]["data_fingerprint"] = f"export-{export}"
            torch.save(payload, tmp_path / name)
        _publish(tmp_path, data)
    assert not server.refresh() and not server.refresh()  # changed, then the second look loads and fails
    response = client.get("/health")
    body = response.json()
    assert response.status_code == 200 and body["status"] == "stale" and body["last_error_at"] is not None
    assert "serving the pair loaded at" in body["detail"] and body["last_error"] in body["detail"]
    assert "\n" not in body["detail"] and len(body["last_error"]) <= 300
    assert "weights_only" not in response.text and "safe_globals" not in response.text
    assert client.get(f"/movies/{movie_ids[0]}/similar?k=2").status_code == 200  # the older pair answers
    _publish(tmp_path / "source", data)  # the good pair again
    assert not server.refresh() and server.refresh() and client.get("/health").json()["status"] == "ok"


def test_new_user_body_size_is_capped_before_parsing(tmp_path):
    import asyncio

    from recsys_assets.api import MAX_BODY, BodyLimit

    _, client, _, movie_ids = _app_over(tmp_path)
    huge = json.dumps({"ratings": {str(10**9 + i): 4 for i in range(MAX_BODY // 10)}})
    response = client.post("/recommendations", content=huge, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.json() == {"detail": f"request body over {MAX_BODY:,} bytes"}
    reached, sent = [], []

    async def app(scope, receive, send):
        reached.append(await receive())

    chunks = [{"type": "http.request", "body": b"x" * 65536, "more_body": True}] * 20  # chunked: no length

    async def receive():
        return chunks.pop()

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/recommendations", "headers": []}
    asyncio.run(BodyLimit(app, limit=MAX_BODY)(scope, receive, send))
    assert not reached and sent[0]["status"] == 413 and len(chunks) == 20 - (MAX_BODY // 65536 + 1)
    chunks[:] = [{"type": "http.request", "body": b"{}", "more_body": False}]
    asyncio.run(BodyLimit(app, limit=MAX_BODY)(scope, receive, send))
    assert reached == [{"type": "http.request", "body": b"{}", "more_body": False}]


def test_new_user_echoes_a_capped_ignored_list_and_takes_only_numbers(tmp_path):
    _, client, _, movie_ids = _app_over(tmp_path)
    ratings = {str(movie_ids[20]): 5, **{str(10**9 + i): 4.5 for i in range(500)}}
    body = client.post("/recommendations", json={"ratings": ratings, "k": 3}).json()
    assert len(body["items"]) == 3 and body["ignored"] == [10**9 + i for i in range(20)]
    assert body["ignored_count"] == 500
    for value in (True, "5", None, [5]):
        response = client.post("/recommendations", json={"ratings": {str(movie_ids[20]): value}})
        assert response.status_code == 422, value
        assert response.json() == {"detail": f"body.ratings.{movie_ids[20]}: Input should be a valid number"}
    assert client.post("/recommendations", json={"ratings": {str(movie_ids[20]): 4}}).status_code == 200


def test_every_route_answers_a_documented_model_with_one_meaning_per_field(tmp_path):
    """/docs showed `dict` for every answer; the reason was a bare id (-1 for none); `score` meant the ranking
    score, the unclamped rating or the fallback's count by turns; /health's times were epoch floats."""
    import datetime

    server, client, _, movie_ids = _app_over(tmp_path)
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    item = schemas["Recommendation"]["properties"]
    assert {"score", "predicted_rating", "ratings_count", "because", "because_movie_id", "title"} <= set(item)
    assert all(field.get("description") for name, field in item.items() if name != "movie_id")
    for route, name in [("/health", "Health"), ("/users/{user_id}/recommendations", "Recommendations")]:
        answer = client.get("/openapi.json").json()["paths"][route]["get"]["responses"]["200"]["content"]
        assert answer["application/json"]["schema"]["$ref"].endswith(f"/{name}")
    body = client.get("/users/1/recommendations?k=5").json()
    assert body["by"] == "ranking" and all(i["score"] is not None and i["ratings_count"] is None for i in body["items"])
    reasons = [i for i in body["items"] if i["because"] is not None]
    assert reasons and all(i["because"]["movie_id"] == i["because_movie_id"] >= 0 for i in reasons)
    assert all(i["because_movie_id"] == -1 for i in body["items"] if i["because"] is None)
    body = client.get("/users/1/recommendations?k=3&by=rating").json()
    assert all(i["score"] is None and i["because"] is None for i in body["items"])
    body = client.get("/users/424242/recommendations?k=3").json()  # unknown: the most popular movies
    assert body["fallback"] == "popularity" and all(isinstance(i["ratings_count"], int) for i in body["items"])
    assert all(i["score"] is None for i in body["items"])
    body = client.post("/recommendations", json={"ratings": {str(movie_ids[20]): 5}, "k": 3, "by": "rating"}).json()
    assert body["by"] == "rating" and len(body["items"]) == 3
    assert client.post("/recommendations", json={"ratings": {str(movie_ids[20]): 5}, "by": "stars"}).status_code == 422
    health = client.get("/health").json()
    assert datetime.datetime.fromisoformat(health["loaded_at"]).tzinfo is not None and health["last_error_at"] is None
    similar = client.get(f"/movies/{movie_ids[0]}/similar?k=2").json()
    assert similar["movie_id"] == movie_ids[0] and {"rank", "movie_id", "title", "similarity"} == set(
        similar["items"][0]
    )


def test_a_known_users_top_10_is_looked_up_and_equals_the_computed_list(tmp_path):
    """The lists computed when the pair loads answer k=10 by ranking; they are exactly what the recommender
    computes per request (every known user), and other requests are still computed."""
    server, client, _, _ = _app_over(tmp_path)
    pair = server.current
    assert pair is not None and pair.known is not None
    rec = pair.recommender
    for user_id in rec.ranker.users.ids:
        computed = rec.recommend(int(user_id), k=10)
        rows = pair.known.rows(int(user_id))
        assert rows is not None and [(r[0], r[1], r[3], r[4]) for r in rows] == list(
            zip(*(computed[c].tolist() for c in ("rank", "movie_id", "predicted_rating", "because_movie_id")))
        )
        # the scores of one user's block and of all users' differ in float32 rounding only
        assert [r[2] for r in rows] == pytest.approx(computed["score"].tolist(), rel=1e-5)
    assert pair.known.rows(10**9) is None
    user = int(rec.ranker.users.ids[0])
    looked_up = client.get(f"/users/{user}/recommendations").json()
    assert looked_up["by"] == "ranking" and looked_up["fallback"] is None
    assert [item["movie_id"] for item in looked_up["items"]] == rec.recommend(user, k=10)["movie_id"].tolist()
    assert len(client.get(f"/users/{user}/recommendations?k=5").json()["items"]) == 5  # computed per request
