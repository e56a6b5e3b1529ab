"""``recsys serve``: the published models behind an HTTP API (FastAPI on uvicorn, loopback by default).

    GET  /health                                   the loaded files' versions, when, the last reload error
    GET  /users/{user_id}/recommendations?k=10&by=ranking     top-k unseen movies of a known user
    GET  /movies/{movie_id}/similar?k=10           the closest movies in the model's movie factors
    POST /recommendations   {"ratings": {"318": 5, "296": 4.5}, "k": 10}   someone the models never saw

Every answer names the model versions that produced it (``models``). The models are reloaded when a
new version is published (``core/serving.py``): a request is answered by the pair that was current
when it started, so no request fails during a promotion. Until a model is published, the model
routes answer 503 with the reason.
"""

import contextlib

import pandas as pd
from fastapi import FastAPI, HTTPException, Path, Query
from pydantic import BaseModel, Field

from recsys_assets.core.serving import Loaded, ModelServer

MAX_K = 1000


def _id():  # a fresh parameter per route: FastAPI binds the object to the route's parameter name
    return Path(ge=-(2**63), le=2**63 - 1, description="a raw id from the export (64-bit)")


class NewUser(BaseModel):
    ratings: dict[int, float] = Field(description="movie id -> rating, on the models' rating scale")
    k: int = Field(10, ge=1, le=MAX_K)


def _records(frame: pd.DataFrame, titles: "pd.Series | None") -> list[dict]:
    """The frame's rows as plain JSON values (and each movie's title, when titles are known)."""
    columns = {name: frame[name].tolist() for name in frame.columns}
    if titles is not None:
        columns["title"] = frame["movie_id"].map(titles).fillna("").tolist()
    return [dict(zip(columns, row)) for row in zip(*columns.values())]


def _answer(loaded: Loaded, frame: pd.DataFrame, titles, **fields) -> dict:
    meta = {key: frame.attrs.get(key) for key in ("by", "fallback", "ignored") if key in frame.attrs}
    return {**fields, **meta, "models": loaded.versions, "items": _records(frame, titles)}


def create_app(server: ModelServer, *, titles: "pd.Series | None" = None, reload_interval: float = 1.0) -> FastAPI:
    """The API over ``server``; while the app runs, ``server`` reloads every ``reload_interval`` seconds."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        with server.watching(reload_interval):
            yield

    app = FastAPI(title="recsys_assets", summary="recommendations from the published models", lifespan=lifespan)
    _health_route(app, server)
    _recommendation_routes(app, server, titles)
    return app


def _loaded(server: ModelServer) -> Loaded:
    current = server.current  # one read: the whole request uses this pair
    if current is None:
        raise HTTPException(503, f"no published model in {server.store.root_url} yet ({server.last_error})")
    return current


def _health_route(app: FastAPI, server: ModelServer) -> None:
    @app.get("/health")
    def health() -> dict:
        current = server.current
        return {
            "status": "ok" if current is not None else "no model",
            "models": current.versions if current else None,
            "loaded_at": current.loaded_at if current else None,
            "reloads": server.reloads,
            "last_error": server.last_error,
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
