"""The ``recsys`` commands that only read the published models: ``recommend``, ``similar``, ``metrics`` (cli.py
builds the parser). They import no PyTorch (``core/weights_file.py``), so each answers in about a second."""

from pathlib import Path

from recsys_assets import settings
from recsys_assets.core.model_errors import ModelFileError

TITLE_WIDTH = 60  # a longer title is cut to this many characters, ending in an ellipsis
ALSO_MATCHED = 5  # the other titles ``similar --title`` names


def load_model(location: str, ranking_location: str | None = None):
    """The rating model by path or fsspec URL (s3://..., file://...), with the ranking model
    (``ranking_location``, default ``ranking_model.pth`` beside it, when that exists). A missing model
    names the folder looked in and how to point elsewhere."""
    from recsys_assets.core.artifact_store import ArtifactStore
    from recsys_assets.core.recommender import Recommender

    folder, name = split_location(location)
    try:
        if ranking_location is None:
            return Recommender.from_store(ArtifactStore(folder), name)
        ranking_folder, ranking_name = split_location(ranking_location)
        return Recommender.from_store(ArtifactStore(folder), name, ArtifactStore(ranking_folder), ranking_name)
    except ModelFileError as exc:
        if "not found" not in str(exc):
            raise
        raise ModelFileError(f"{exc}\n{missing_hint(folder)}") from None


def missing_hint(folder: str) -> str:
    """Where the models were looked for, and the two ways to another folder."""
    data_dir = settings.DATA_DIR.get()
    where = f"RECSYS_DATA_DIR={data_dir}" if settings.DATA_DIR.is_set() else f"RECSYS_DATA_DIR unset: {data_dir}"
    return (
        f"  looked in {folder} ({where}, from the current folder {Path.cwd()}); run scripts/run_pipeline.sh, "
        "or set RECSYS_DATA_DIR (or --model) to the folder that holds the models"
    )


def split_location(location: str) -> tuple[str, str]:
    """(folder, file name) of a URL, or of a local path resolved against the current folder."""
    if "://" in location:
        folder, _, name = location.rpartition("/")
        return folder, name
    path = Path(location).expanduser().resolve()
    return str(path.parent), path.name


def short(text: str, width: int = TITLE_WIDTH) -> str:
    """``text`` cut to ``width`` characters, the last an ellipsis, when longer."""
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def parse_rated(text: str) -> dict[int, float]:
    ratings = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        movie, sep, value = item.partition(":")
        try:
            ratings[int(movie)] = float(value)
        except ValueError:
            raise ValueError(
                f"--rated expects MOVIE:RATING pairs separated by commas (e.g. 318:5,296:4.5), got {item!r}"
            ) from None
        if not sep:
            raise ValueError(f"--rated expects MOVIE:RATING pairs, got {item!r}")
    if not ratings:
        raise ValueError("--rated needs at least one MOVIE:RATING pair")
    return ratings


def _shortened(titles):
    return titles.map(short) if titles is not None else None


def recommend(args) -> int:
    from recsys_assets.core.presentation import read_titles, recommendations_table

    rec = load_model(args.model, args.ranking_model)
    titles = _shortened(read_titles(args.movies))
    if args.rated is not None:
        frame = rec.recommend_for_ratings(parse_rated(args.rated), k=args.k, by=args.by)
        if frame.attrs.get("ignored"):
            print(f"not in the model, ignored: {', '.join(map(str, frame.attrs['ignored']))}")
        fallback = "none of the rated movies is known to the ranking model: showing the most popular movies"
        who = "every movie of the catalogue is already rated"
    else:
        frame = rec.recommend(args.user, k=args.k, by=args.by)
        fallback = f"user {args.user} is unknown to the model: showing the most popular movies"
        who = f"user {args.user} has rated every movie of the catalogue"
    if frame.empty:  # nothing unrated is left: a sentence and a failure, not an empty table
        raise ValueError(f"{who}; nothing to recommend")
    if frame.attrs.get("fallback"):
        print(fallback)
    elif args.by == "ranking" and frame.attrs.get("by") != "ranking":
        print("no ranking model found: ordered by predicted rating")
    print(recommendations_table(frame, titles).to_string(index=False))
    return 0


SIGNALS = {
    "item-item": "the ranking model's item-item weights (who rated both, and how high; ties by its movie factors)",
    "ranking": "the cosine of the ranking model's movie factors",
    "rating": "the cosine of the rating model's movie factors",
}


def similar(args) -> int:
    from recsys_assets.core.presentation import matching_movies, movie_name, read_genres, read_titles

    if (args.movie is None) == (args.title is None):
        raise ValueError("give either --movie ID or --title TEXT")
    rec = load_model(args.model, args.ranking_model)
    titles = read_titles(args.movies)
    movie = args.movie
    if args.title is not None:
        mapping = rec.ranker.movies if rec.ranker is not None else rec.movies
        movie, *others = matching_movies(titles, args.title, known=mapping.known)
        if others:
            named = "; ".join(movie_name(m, _shortened(titles)) for m in others[:ALSO_MATCHED])
            more = f" and {len(others) - ALSO_MATCHED} more" if len(others) > ALSO_MATCHED else ""
            print(f"also matched: {named}{more} (use --movie ID for one of them)")
    try:
        frame = rec.similar_movies(movie, k=args.k, genres=read_genres(args.movies))
    except KeyError as exc:
        raise ValueError(str(exc).strip("'\"")) from exc
    by = frame.attrs["by"].removesuffix(" and genres")
    genres = " and the genres they share (movies.csv)" if by != frame.attrs["by"] else ""
    print(f"movies like {movie_name(movie, titles)}, by {SIGNALS.get(by, by)}{genres}:")
    if titles is not None:
        frame = frame.assign(title=frame["movie_id"].map(_shortened(titles)).fillna(""))
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def metrics(args) -> int:
    """The published models' figures on their validation split (what run_pipeline.sh ends with)."""
    rec = load_model(args.model, args.ranking_model)
    m = rec.info.get("metrics", {})
    figure = lambda metrics, key: f"{metrics[key]:.4f}" if key in metrics else "n/a"  # noqa: E731
    print(
        f"rating model:  validation RMSE {figure(m, 'val_rmse')} (global mean {figure(m, 'global_mean_rmse')}, "
        f"bias only {figure(m, 'bias_only_rmse')}); {len(rec.users):,} users, {len(rec.movies):,} movies"
    )
    if rec.ranker is not None:
        r = rec.ranker.metrics
        print(
            f"ranking model: NDCG@10 {figure(r, 'val_ndcg_at_10')} (most popular {figure(r, 'popular_ndcg_at_10')}, "
            f"ordering by predicted rating {figure(m, 'ndcg_at_10')})"
        )
    else:
        print("ranking model: none published")
    return 0
