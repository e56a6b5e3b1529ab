"""``recsys serve``: the published models behind an HTTP API (FastAPI on uvicorn, loopback by default).

    GET  /health                                   ok / stale / no model, the loaded files' versions, the last reload error
    GET  /users/{user_id}/recommendations?k=10&by=ranking     top-k unseen movies of a known user
    GET  /movies/{movie_id}/similar?k=10           the closest movies in the model's movie factors
    POST /recommendations   {"ratings": {"318": 5, "296": 4.5}, "k": 10, "by": "ranking"}   someone the models never saw

Every answer is a pydantic model (``/docs`` shows each field) and names the model versions that produced it
(``models``). A recommended movie carries one meaning per field: ``score`` the ranking model's score (null
when the list is not ranked by it), ``predicted_rating`` the rating model's prediction, ``ratings_count``
the most-popular fallback's count, and ``because`` the rated movie behind it (``{movie_id, title}``, null
without one; ``because_movie_id`` repeats its id, -1 without one, for older clients). The models are reloaded when a
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
import math
import os
from typing import Annotated, Literal

import pandas as pd
from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, Strict

from recsys_assets.core.serving import KNOWN_K, MAX_REASON, Loaded, ModelServer

MAX_K = 1000
MAX_BODY = 1 << 20  # bytes of a request body: some 50,000 ratings
MAX_IGNORED = 20  # ignored movie ids echoed in an answer (``ignored_count`` says how many there were)


def _id():  # a fresh parameter per route: FastAPI binds the object to the route's parameter name
    return Path(ge=-(2**63), le=2**63 - 1, description="a raw id from the export (64-bit)")


By = Literal["ranking", "rating"]


class NewUser(BaseModel):
    ratings: dict[int, Annotated[float, Strict()]] = Field(
        description="movie id -> rating (a JSON number, not a string or a boolean), on the models' rating scale"
    )
    k: int = Field(10, ge=1, le=MAX_K)
    by: By = Field("ranking", description="rank by the ranking model (default) or by predicted rating")


class Movie(BaseModel):
    movie_id: int = Field(description="the movie's id in the export")
    title: str | None = Field(None, description="its title (null without a movies.csv: recsys serve --movies)")


class Recommendation(BaseModel):
    rank: int = Field(description="1 for the best")
    movie_id: int
    title: str | None = Field(None, description="the movie's title (null without a movies.csv)")
    score: float | None = Field(
        None,
        description="the ranking model's score (higher ranks first; the blend of standardized parts, not a rating); "
        "null when the list is not ranked by the ranking model (by=rating, or the most-popular fallback)",
    )
    predicted_rating: float = Field(
        description="the rating model's predicted rating, on the rating scale (by=rating orders by it, unclamped)"
    )
    ratings_count: int | None = Field(
        None, description="the most-popular fallback only: how many ratings the movie has (what orders it)"
    )
    because: Movie | None = Field(
        None, description="the movie the user rated highly that is most like this one; null without one"
    )
    because_movie_id: int = Field(-1, description="because's movie id, -1 without one (for older clients)")


class Versions(BaseModel):
    rating: str | None = Field(None, description="the kept version of the rating model serving (recsys models)")
    ranking: str | None = Field(None, description="the kept version of the ranking model, null without one")


class Recommendations(BaseModel):
    user_id: int | None = Field(None, description="the user asked about (null for a new user's ratings)")
    by: Literal["ranking", "rating", "popularity"] = Field(description="what ordered the list")
    fallback: str | None = Field(None, description='"popularity" when the user is unknown to the model')
    ignored: list[int] | None = Field(None, description=f"rated movies unknown to the model (the first {MAX_IGNORED})")
    ignored_count: int | None = Field(None, description="how many rated movies were ignored")
    models: Versions
    items: list[Recommendation]


class SimilarMovie(BaseModel):
    rank: int
    movie_id: int
    title: str | None = None
    similarity: float = Field(
        description="how alike (higher first): item-item weight scaled to (0, 4] plus the factors' cosine, "
        "or the cosine alone (see by)"
    )


class Similar(BaseModel):
    movie_id: int
    title: str | None = None
    by: str = Field(
        description="item-item (weights, ties by the factors' cosine), or ranking / rating (cosine); ' and genres' when "
        "the server has movies.csv (the genres they share count too)"
    )
    models: Versions
    items: list[SimilarMovie]


class Health(BaseModel):
    status: Literal["ok", "stale", "no model"] = Field(description="stale: serving an older pair (see detail)")
    detail: str | None = None
    models: Versions | None = None
    loaded_at: str | None = Field(None, description="when the serving pair loaded (ISO 8601, UTC)")
    reloads: int = Field(description="pairs loaded since the server started")
    last_error: str | None = Field(None, description="why the published files did not load, until a pair loads")
    last_error_at: str | None = Field(None, description="when (ISO 8601, UTC)")


def _title(titles: "pd.Series | None", movie_id: int) -> str | None:
    title = titles.get(movie_id) if titles is not None else None
    return title if isinstance(title, str) else None


def _number(value) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _recommendations(frame: pd.DataFrame, titles, by: str) -> list[Recommendation]:
    """The frame's rows, one meaning per field (see :class:`Recommendation`)."""
    rows = zip(*(frame[c].tolist() for c in ("rank", "movie_id", "score", "predicted_rating", "because_movie_id")))
    return _items(rows, titles, by)


def _items(rows, titles, by: str) -> list[Recommendation]:
    """Rows of (rank, movie_id, score, predicted_rating, because_movie_id) as the answer's items."""
    return [
        Recommendation(
            rank=rank,
            movie_id=movie,
            title=_title(titles, movie),
            score=_number(score) if by == "ranking" else None,
            predicted_rating=predicted,
            ratings_count=int(score) if by == "popularity" else None,
            because=Movie(movie_id=because, title=_title(titles, because)) if because >= 0 else None,
            because_movie_id=because,
        )
        for rank, movie, score, predicted, because in rows
    ]


def _answer(loaded: Loaded, frame: pd.DataFrame, titles, user_id: int | None = None) -> Recommendations:
    by = frame.attrs.get("by") or "rating"
    ignored = frame.attrs.get("ignored")
    return Recommendations(
        user_id=user_id,
        by=by,
        fallback=frame.attrs.get("fallback"),
        ignored=None if ignored is None else list(ignored)[:MAX_IGNORED],  # the answer does not grow with the request
        ignored_count=None if ignored is None else len(ignored),
        models=Versions(**loaded.versions),
        items=_recommendations(frame, titles, by),
    )


def create_app(
    server: ModelServer,
    *,
    titles: "pd.Series | None" = None,
    genres: "pd.Series | None" = None,
    reload_interval: float = 1.0,
) -> FastAPI:
    """The API over ``server``; while the app runs, ``server`` reloads every ``reload_interval`` seconds."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        with server.watching(reload_interval):
            yield

    app = FastAPI(title="recsys_assets", summary="recommendations from the published models", lifespan=lifespan)
    app.add_middleware(BodyLimit, limit=MAX_BODY)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    _health_route(app, server)
    _recommendation_routes(app, server, titles, genres)
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


def _when(stamp: float | None) -> str | None:
    """A ``time.time()`` stamp as ISO 8601 in UTC (``2026-12-07T18:00:00+00:00``)."""
    return None if stamp is None else datetime.datetime.fromtimestamp(stamp, datetime.UTC).isoformat(timespec="seconds")


def _health_route(app: FastAPI, server: ModelServer) -> None:
    @app.get("/health")
    def health() -> Health:
        current, error, error_at = server.current, server.last_error, server.last_error_at
        if current is None:
            status, detail = "no model", f"no pair has loaded yet: {error}"
        elif error is not None:
            status = "stale"
            detail = f"serving the pair loaded at {_when(current.loaded_at)}; the published files do not load: {error}"
        else:
            status, detail = "ok", None
        return Health(
            status=status,
            detail=detail,
            models=Versions(**current.versions) if current else None,
            loaded_at=_when(current.loaded_at) if current else None,
            reloads=server.reloads,
            last_error=error,
            last_error_at=_when(error_at),
        )


def _recommendation_routes(
    app: FastAPI, server: ModelServer, titles: "pd.Series | None", genres: "pd.Series | None" = None
) -> None:
    @app.get("/users/{user_id}/recommendations")
    def recommend(user_id: int = _id(), k: int = Query(10, ge=1, le=MAX_K), by: By = "ranking") -> Recommendations:
        pair = _loaded(server)
        rows = pair.known.rows(user_id) if pair.known is not None and k == KNOWN_K and by == "ranking" else None
        if rows is not None:  # computed when the pair loaded: a lookup
            versions = Versions(**pair.versions)
            items = _items(rows, titles, "ranking")
            return Recommendations(user_id=user_id, by="ranking", fallback=None, models=versions, items=items)
        frame = pair.recommender.recommend(user_id, k=k, by=by)
        return _answer(pair, frame, titles, user_id=user_id)

    @app.get("/movies/{movie_id}/similar")
    def similar(movie_id: int = _id(), k: int = Query(10, ge=1, le=MAX_K)) -> Similar:
        pair = _loaded(server)
        try:
            frame = pair.recommender.similar_movies(movie_id, k=k, genres=genres)
        except KeyError:
            raise HTTPException(404, f"movie {movie_id} is not known to the model") from None
        rows = zip(*(frame[c].tolist() for c in ("rank", "movie_id", "similarity")))
        items = [SimilarMovie(rank=r, movie_id=m, title=_title(titles, m), similarity=s) for r, m, s in rows]
        versions = Versions(**pair.versions)
        return Similar(
            movie_id=movie_id, title=_title(titles, movie_id), by=frame.attrs["by"], models=versions, items=items
        )

    @app.post("/recommendations")
    def new_user(body: NewUser) -> Recommendations:
        pair = _loaded(server)
        if not body.ratings:
            raise HTTPException(422, "ratings needs at least one movie id -> rating")
        try:
            frame = pair.recommender.recommend_for_ratings(body.ratings, k=body.k, by=body.by)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        except OverflowError:
            raise HTTPException(422, "movie ids are 64-bit integers") from None
        return _answer(pair, frame, titles)


# how `serve` hands its arguments to each worker process (JSON): internal, not a setting (settings.py declares those)
SPEC_VARIABLE = "recsys_assets_serve_spec"


def serve(
    data_dir: str,
    *,
    host: str,
    port: int,
    movies: str | None = None,
    reload_interval: float = 1.0,
    workers: int = 1,
) -> None:
    """Run the API with uvicorn until interrupted: ``workers`` processes, each with its own loaded pair and
    watcher (several use several cores; during a promotion one may answer from the new pair a moment before
    another), requests in each one's thread pool, each request's matrix products on one BLAS thread
    (concurrent requests are the parallelism, and 16 requests times every core's BLAS threads would
    oversubscribe the CPUs). ``movies``: movies.csv for titles and genres."""
    import uvicorn

    spec = {"data_dir": data_dir, "movies": movies, "reload_interval": reload_interval}
    os.environ[SPEC_VARIABLE] = json.dumps(spec)  # the worker processes inherit it
    options = {"host": host, "port": port, "log_level": "warning", "access_log": False}
    if workers > 1:
        uvicorn.run("recsys_assets.api:app_from_spec", factory=True, workers=workers, **options)
    else:
        uvicorn.run(app_from_spec(), **options)


def app_from_spec() -> FastAPI:
    """The app :func:`serve` runs, built from its arguments (:data:`SPEC_VARIABLE`) in each worker process."""
    from threadpoolctl import threadpool_limits

    from recsys_assets.core.presentation import read_genres, read_titles

    spec = json.loads(os.environ[SPEC_VARIABLE])
    threadpool_limits(1)
    titles, genres = read_titles(spec["movies"]), read_genres(spec["movies"])
    server = ModelServer(spec["data_dir"])
    return create_app(server, titles=titles, genres=genres, reload_interval=spec["reload_interval"])
