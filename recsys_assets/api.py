"""``recsys serve``: the published models behind an HTTP API (FastAPI on uvicorn, loopback by default).

    GET  /health                                   ok / stale / no model, the loaded files' versions, the last reload error
    GET  /users/{user_id}/recommendations?k=10&by=ranking     top-k unseen movies of a known user
    GET  /movies/{movie_id}/similar?k=10           the closest movies in the model's movie factors
    POST /recommendations   {"ratings": {"318": 5, "296": 4.5}, "k": 10}   someone the models never saw

Every answer names the model versions that produced it (``models``). The models are reloaded when a
new version is published (``core/serving.py``): a request is answered by the pair that was current
when it started, so no request fails during a promotion. Until a model is published, the model
routes answer 503 with the reason.

``/health`` answers 200 while a pair is loaded, with ``status``: ``ok``, or ``stale`` when the published
files changed and do not load (a damaged file, a mismatched pair): every route still answers from the
older pair, so the server stays in rotation, and ``detail`` says which pair and why; ``no model`` before
any pair loaded. A request body over ``MAX_BODY`` bytes is refused (413) before it is parsed; every error
is one line of JSON (``{"detail": "..."}``).
"""

import contextlib
import datetime
import json
from typing import Annotated

import pandas as pd
from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, Strict

from recsys_assets.core.serving import MAX_REASON, Loaded, ModelServer

MAX_K = 1000
MAX_BODY = 1 << 20  # bytes of a request body: some 50,000 ratings
MAX_IGNORED = 20  # ignored movie ids echoed in an answer (``ignored_count`` says how many there were)


def _id():  # a fresh parameter per route: FastAPI binds the object to the route's parameter name
    return Path(ge=-(2**63), le=2**63 - 1, description="a raw id from the export (64-bit)")


class NewUser(BaseModel):
    ratings: dict[int, Annotated[float, Strict()]] = Field(
        description="movie id -> rating (a JSON number, not a string or a boolean), on the models' rating scale"
    )
    k: int = Field(10, ge=1, le=MAX_K)


def _records(frame: pd.DataFrame, titles: "pd.Series | None") -> list[dict]:
    """The frame's rows as plain JSON values (and each movie's title, when titles are known)."""
    columns = {name: frame[name].tolist() for name in frame.columns}
    if titles is not None:
        columns["title"] = frame["movie_id"].map(titles).fillna("").tolist()
    return [dict(zip(columns, row)) for row in zip(*columns.values())]


def _answer(loaded: Loaded, frame: pd.DataFrame, titles, **fields) -> dict:
    meta = {key: frame.attrs.get(key) for key in ("by", "fallback", "ignored") if key in frame.attrs}
    if "ignored" in meta:  # the first few and how many: the answer does not grow with the request
        ignored = list(meta["ignored"] or [])
        meta.update(ignored=ignored[:MAX_IGNORED], ignored_count=len(ignored))
    return {**fields, **meta, "models": loaded.versions, "items": _records(frame, titles)}


def create_app(server: ModelServer, *, titles: "pd.Series | None" = None, reload_interval: float = 1.0) -> FastAPI:
    """The API over ``server``; while the app runs, ``server`` reloads every ``reload_interval`` seconds."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        with server.watching(reload_interval):
            yield

    app = FastAPI(title="recsys_assets", summary="recommendations from the published models", lifespan=lifespan)
    app.add_middleware(BodyLimit, limit=MAX_BODY)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    _health_route(app, server)
    _recommendation_routes(app, server, titles)
    return app


def _loaded(server: ModelServer) -> Loaded:
    current = server.current  # one read: the whole request uses this pair
    if current is None:
        raise HTTPException(503, f"no published model in {server.store.root_url} yet ({server.last_error})")
    return current


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is answered 413 before the app parses any of
    it: by its Content-Length, or, sent in chunks, as soon as the bytes received pass the limit."""

    def __init__(self, app, limit: int = MAX_BODY):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.limit:
            return await self._refuse(send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await self._refuse(send)
            if not message.get("more_body", False):
                break
        pending = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay():
            return pending.pop() if pending else await receive()

        return await self.app(scope, replay, send)

    async def _refuse(self, send) -> None:
        body = json.dumps({"detail": f"request body over {self.limit:,} bytes"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": [*headers, (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    """A request that does not validate: 422 naming each field (``body.ratings.318: ...``) in one line,
    without echoing the input."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    parts = [f"{'.'.join(str(p)[:40] for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors[:3]]
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    line = "; ".join(parts) + more
    return JSONResponse({"detail": line[:MAX_REASON] or "invalid request"}, status_code=422)


def _when(stamp: float) -> str:
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).isoformat(timespec="seconds")


def _health_route(app: FastAPI, server: ModelServer) -> None:
    @app.get("/health")
    def health() -> dict:
        current, error, error_at = server.current, server.last_error, server.last_error_at
        if current is None:
            status, detail = "no model", f"no pair has loaded yet: {error}"
        elif error is not None:
            status = "stale"
            detail = f"serving the pair loaded at {_when(current.loaded_at)}; the published files do not load: {error}"
        else:
            status, detail = "ok", None
        return {
            "status": status,
            "detail": detail,
            "models": current.versions if current else None,
            "loaded_at": current.loaded_at if current else None,
            "reloads": server.reloads,
            "last_error": error,
            "last_error_at": error_at,
        }


def _recommendation_routes(app: FastAPI, server: ModelServer, titles: "pd.Series | None") -> None:
    @app.get("/users/{user_id}/recommendations")
    def recommend(user_id: int = _id(), k: int = Query(10, ge=1, le=MAX_K), by: str = Query("ranking")) -> dict:
        pair = _loaded(server)
        if by not in ("ranking", "rating"):
            raise HTTPException(422, f"by must be 'ranking' or 'rating', got {by!r}")
        frame = pair.recommender.recommend(user_id, k=k, by=by)
        return _answer(pair, frame, titles, user_id=user_id)

    @app.get("/movies/{movie_id}/similar")
    def similar(movie_id: int = _id(), k: int = Query(10, ge=1, le=MAX_K)) -> dict:
        pair = _loaded(server)
        try:
            frame = pair.recommender.similar_movies(movie_id, k=k)
        except KeyError:
            raise HTTPException(404, f"movie {movie_id} is not known to the model") from None
        return _answer(pair, frame, titles, movie_id=movie_id)

    @app.post("/recommendations")
    def new_user(body: NewUser) -> dict:
        pair = _loaded(server)
        if not body.ratings:
            raise HTTPException(422, "ratings needs at least one movie id -> rating")
        try:
            frame = pair.recommender.recommend_for_ratings(body.ratings, k=body.k)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        except OverflowError:
            raise HTTPException(422, "movie ids are 64-bit integers") from None
        return _answer(pair, frame, titles)


def serve(data_dir: str, *, host: str, port: int, titles=None, reload_interval: float = 1.0) -> None:
    """Run the API with uvicorn until interrupted (one process; requests in its thread pool, each request's
    matrix products on one BLAS thread: concurrent requests are the parallelism, and 16 requests times
    every core's BLAS threads would oversubscribe the CPUs)."""
    import uvicorn
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    app = create_app(ModelServer(data_dir), titles=titles, reload_interval=reload_interval)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
