"""``recsys``: small command-line helpers around the pipeline's core.

    recsys sample [--path data/ratings_export.csv] [--ratings 100000] [--force]
    recsys recommend --user 42 [-k 10] [--model data/recommendation_model.pth] [--movies movies.csv]
    recsys similar --movie 1 [-k 10] [--model ...] [--movies movies.csv]

Titles are shown when a MovieLens movies.csv is given (--movies or RECSYS_MOVIES_PATH).
"""

import argparse
import os
import sys
from pathlib import Path

from recsys_assets.core.artifact import ModelFileError


def _default_export() -> str:
    return os.environ.get("RECSYS_EXPORT_PATH") or "data/ratings_export.csv"


def _default_model() -> str:
    return (os.environ.get("RECSYS_DATA_DIR") or "data").rstrip("/") + "/recommendation_model.pth"


def _load_model(location: str):
    """A model file by path or fsspec URL (s3://..., file://...)."""
    from recsys_assets.core.artifact_store import ArtifactStore
    from recsys_assets.core.recommender import Recommender

    folder, _, name = location.rpartition("/")
    store = ArtifactStore(folder or ".")
    if not store.exists(name):
        raise ModelFileError(f"model file not found: {store.url(name)}; materialize recommendation_model first")
    with store.read(name) as path:
        return Recommender.load(path)


def _sample(args) -> int:
    from recsys_assets.core.sample_data import SampleSpec, write_sample_export

    path = Path(args.path)
    if path.exists() and not args.force:
        print(f"{path} exists; keeping it (use --force to overwrite)")
        return 0
    spec = SampleSpec(n_ratings=args.ratings, n_users=args.users, n_movies=args.movies, seed=args.seed)
    write_sample_export(path, spec)
    print(f"wrote a synthetic export of {spec.n_ratings:,} ratings to {path}")
    return 0


def _with_titles(frame, movies_path: str | None):
    if not movies_path:
        return frame
    import pandas as pd

    path = Path(movies_path)
    if not path.exists():
        raise ValueError(f"movies file not found: {path}")
    titles = pd.read_csv(path, usecols=["movieId", "title"]).set_index("movieId")["title"]
    return frame.assign(title=frame["movie_id"].map(titles).fillna(""))


def _recommend(args) -> int:
    rec = _load_model(args.model)
    frame = rec.recommend(args.user, k=args.k)
    if frame.attrs.get("fallback"):
        print(f"user {args.user} is unknown to the model: showing the most popular movies")
    print(_with_titles(frame, args.movies).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0


def _similar(args) -> int:
    rec = _load_model(args.model)
    try:
        frame = rec.similar_movies(args.movie, k=args.k)
    except KeyError as exc:
        raise ValueError(str(exc).strip("'\"")) from exc
    print(_with_titles(frame, args.movies).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="recsys", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("sample", help="generate a synthetic ratings export")
    p.add_argument("--path", default=_default_export())
    p.add_argument("--ratings", type=int, default=100_000)
    p.add_argument("--users", type=int, default=1_000)
    p.add_argument("--movies", type=int, default=4_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=_sample)
    model_args = argparse.ArgumentParser(add_help=False)  # shared by the commands that read a model
    model_args.add_argument("-k", type=int, default=10)
    model_args.add_argument("--model", default=_default_model())
    model_args.add_argument("--movies", default=os.environ.get("RECSYS_MOVIES_PATH"), help="MovieLens movies.csv for titles")
    p = sub.add_parser("recommend", parents=[model_args], help="top-k movies for a user from a trained model")
    p.add_argument("--user", type=int, required=True)
    p.set_defaults(func=_recommend)
    p = sub.add_parser("similar", parents=[model_args], help="movies closest to a movie in the model's embedding space")
    p.add_argument("--movie", type=int, required=True)
    p.set_defaults(func=_similar)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ModelFileError, ValueError) as exc:
        print(f"recsys: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
