"""recsys: small command-line helpers around the pipeline's core.

    recsys sample [--path data/ratings_export.csv] [--n-ratings 100000] [--force]
    recsys recommend --user 42 [-k 10] [--by ranking|rating] [--model data/recommendation_model.pth]
    recsys recommend --rated 318:5,296:4.5 [-k 10] [--by ranking|rating]  (someone the model never saw)
    recsys similar --movie 1 | --title "toy story" [-k 10] [--model ...]
    recsys metrics [--model ...]                          (the published models' validation figures)
    recsys --version
    recsys models [--data-dir data]                      (the kept published models)
    recsys rollback [VERSION] [--ranking] [--force] [--data-dir data]
    recsys serve [--host 127.0.0.1] [--port 8000] [--data-dir data]   (HTTP API, reloads on promotion)

Recommendations are ranked by the ranking model (data/ranking_model.pth, beside the
rating model) and show the rating model's predicted rating and the rated movie behind
each one. Titles are shown when a MovieLens movies.csv is given (--movies or
RECSYS_MOVIES_PATH).
"""

import argparse
import importlib.metadata
import sys
from pathlib import Path

try:
    from recsys_assets import settings
except ValueError as exc:  # the settings file (recsys.env) is malformed: one line, no traceback
    raise SystemExit(f"recsys: error: {exc}") from None
from recsys_assets import cli_read  # noqa: E402
from recsys_assets.cli_args import MIN_SAMPLE_RATINGS, PORTS, Parser, seconds, whole  # noqa: E402
from recsys_assets.core.model_errors import ModelFileError  # noqa: E402


def _default_export() -> str:
    return settings.EXPORT_PATH.get()


def _version() -> str:
    """The installed package's version (the source tree's pyproject.toml when it is not installed)."""
    try:
        return importlib.metadata.version("recsys_assets")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _shown(location: str) -> str:
    """A default as --help shows it: a local path resolved against the current folder, a URL as it is."""
    return location if "://" in location else str(Path(location).expanduser().resolve())


def _default_model() -> str:
    from recsys_assets.core.release.candidate import RATING_FILE

    return settings.data_path(RATING_FILE)


class ProgressBar:
    """``stage [#####-----]  50%`` redrawn in place on ``stream``, only when it is a terminal (no noise in logs)."""

    WIDTH = 30

    def __init__(self, stream):
        self.stream, self.shown = stream, False
        self.active = bool(getattr(stream, "isatty", lambda: False)())

    def update(self, stage: str, share: float) -> None:
        if not self.active:
            return
        filled = int(self.WIDTH * min(max(share, 0.0), 1.0))
        self.stream.write(f"\r{stage:<14} [{'#' * filled}{'-' * (self.WIDTH - filled)}] {share:4.0%}")
        self.stream.flush()
        self.shown = True

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        if self.shown:  # end the bar's line
            self.stream.write("\n")
            self.stream.flush()


def _sample(args) -> int:
    from recsys_assets.core.exports import is_sample_export, mark_sample
    from recsys_assets.core.sample_data import SampleSpec, write_sample_export

    path = Path(args.path)
    if path.exists() and not is_sample_export(path):  # the user's own export: never replaced, never offered to be
        if args.force:
            raise ValueError(f"{path} is not a sample export (it is your data); --force only replaces a sample")
        print(f"using your export {path} (recsys sample writes a sample only where there is no export)")
        return 0
    if path.exists() and not args.force:
        print(f"{path} is a sample export; keeping it (--force writes a new sample)")
        return 0
    spec = SampleSpec(n_ratings=args.n_ratings, n_users=args.n_users, n_movies=args.n_movies, seed=args.seed)
    with ProgressBar(sys.stderr) as bar:
        write_sample_export(path, spec, on_progress=bar.update)
    mark_sample(path)  # the demo export: the sensor and a later `recsys sample` recognise it
    print(f"wrote a synthetic export of {spec.n_ratings:,} ratings to {path}")
    return 0


def _validators() -> dict:
    """Each model file's full validation, run before a kept version is restored."""
    from recsys_assets.core.ranking.model import RankingModel
    from recsys_assets.core.rating.model_file import load_model_file
    from recsys_assets.core.release.candidate import RANKING_FILE, RATING_FILE

    return {RATING_FILE: load_model_file, RANKING_FILE: RankingModel.load}


def _version_line(v, current: str | None, mark: str) -> str:
    from recsys_assets.core.release.versions_table import metric_of

    metric, value = metric_of(v.record.get("metrics"))
    figure = f"{'val RMSE' if metric == 'val_rmse' else 'val NDCG@10'} {value:.4f}" if metric else ""
    data = v.record.get("data") if isinstance(v.record.get("data"), dict) else {}
    counts = [data.get(key) if isinstance(data.get(key), int) else 0 for key in ("n_users", "n_ratings")]
    marker = "*" if v.name == current else " "
    return (
        f" {marker}{v.name}  {v.record.get('published_at', '?')}  {figure}  "
        f"{counts[0]:,} users, {counts[1]:,} ratings  "
        f"export {str(v.record.get('export_fingerprint') or '-')[:12]}" + (f"  [{mark}]" if mark else "")
    )


def _models(args) -> int:
    from recsys_assets.core.artifact_store import ArtifactStore
    from recsys_assets.core.release.candidate import MODEL_FILES
    from recsys_assets.core.release.history import ModelHistory
    from recsys_assets.core.release.registry import live_record
    from recsys_assets.core.release.versions_table import damaged_files, lineage_mark

    store = ArtifactStore(args.data_dir)
    for kind, name in MODEL_FILES.items():
        history = ModelHistory(store, name)
        scan = history.scan()
        print(f"{kind} model ({store.url(name)}):")
        for problem in scan.problems + damaged_files(history, scan.versions):
            print(f"  damaged: {problem}")
        if not scan.versions:
            print("  no intact kept versions")
            continue
        current, live_now = history.current(scan.versions), live_record(store, name)
        for v in scan.versions:
            print(_version_line(v, current, lineage_mark(v, live_now)))
    print("(* = the published file; [demo sample] / [other lineage]: rollback needs --force)")
    return 0


def _rollback(args) -> int:
    from recsys_assets.core.artifact_store import ArtifactStore
    from recsys_assets.core.locks import BusyError
    from recsys_assets.core.release.candidate import MODEL_FILES
    from recsys_assets.core.release.registry import rollback, work_folder_for

    name = MODEL_FILES["ranking" if args.ranking else "rating"]
    store = ArtifactStore(args.data_dir)
    folder = work_folder_for(args.data_dir, settings.WORK_DIR.get())
    try:
        restored = rollback(store, name, args.version, _validators(), work_folder=folder, force=args.force)
    except BusyError as exc:
        raise ValueError(f"{exc} (a model is being published)") from None
    for file, chosen in restored:
        print(f"restored {store.url(file)} to {chosen.name} (published {chosen.record.get('published_at', '?')})")
    return 0


def _serve(args) -> int:
    # RECSYS_SERVE_PORT is read here, when serving, so that a bad value fails this command alone
    port = args.port if args.port is not None else settings.SERVE_PORT.integer(minimum=PORTS[0], maximum=PORTS[1])
    from recsys_assets.api import serve
    from recsys_assets.core.presentation import read_titles

    read_titles(args.movies)  # a bad titles file fails here, before the server starts
    workers = f", {args.workers} worker processes" if args.workers > 1 else ""
    print(f"serving the models in {args.data_dir} on http://{args.host}:{port}{workers} (docs at /docs; Ctrl-C stops)")
    serve(
        args.data_dir,
        host=args.host,
        port=port,
        movies=args.movies,
        reload_interval=args.reload_interval,
        workers=args.workers,
    )
    return 0


def _add_serve(sub, data_args) -> None:
    p = sub.add_parser("serve", parents=[data_args], help="an HTTP API over the published models (FastAPI)")
    p.add_argument("--host", default=settings.SERVE_HOST.get(), help="address to bind (default: %(default)s)")
    # the port setting is read when `serve` runs, not here: a bad RECSYS_SERVE_PORT fails only `serve`
    p.add_argument(
        "--port",
        type=whole(*PORTS),
        default=None,
        help=f"port, 1-65535 (default: $RECSYS_SERVE_PORT or {settings.SERVE_PORT.default})",
    )
    p.add_argument("--reload-interval", type=seconds, default=1.0, help="seconds between looks at the files (1)")
    p.add_argument(
        "--workers",
        type=whole(1, 64),
        default=1,
        help="server processes, each with its own copy of the models (2 uses both cores of a 2-core machine; "
        "during a promotion one may switch a moment before another). Default: 1",
    )
    _movies_argument(p)
    p.set_defaults(func=_serve)


def _add_sample(sub) -> None:
    p = sub.add_parser("sample", help="generate a synthetic ratings export")
    p.add_argument(
        "--path", default=_default_export(), help=f"where to write it (default: {_shown(_default_export())})"
    )
    p.add_argument(
        "--n-ratings",
        type=whole(MIN_SAMPLE_RATINGS),
        default=100_000,
        help=f"how many ratings, at least {MIN_SAMPLE_RATINGS} (default 100000)",
    )
    p.add_argument("--n-users", type=whole(1), default=1_000, help="how many users (default 1000)")
    p.add_argument("--n-movies", type=whole(1), default=4_000, help="how many movies (default 4000)")
    p.add_argument("--seed", type=whole(0), default=42, help="random seed, 0 or more (default 42)")
    p.add_argument("--force", action="store_true", help="replace an existing sample export (never your own file)")
    p.set_defaults(func=_sample)


def _movies_argument(p) -> None:
    default = settings.MOVIES_PATH.get() or None
    p.add_argument(
        "--movies",
        default=default,
        help=f"MovieLens movies.csv for titles (default: {_shown(default) if default else 'none; RECSYS_MOVIES_PATH'})",
    )


def _model_files() -> argparse.ArgumentParser:
    """--model and --ranking-model: every command that reads the published models."""
    files = argparse.ArgumentParser(add_help=False)
    files.add_argument(
        "--model", default=_default_model(), help=f"the rating model file or URL (default: {_shown(_default_model())})"
    )
    files.add_argument(
        "--ranking-model",
        default=None,
        help="the ranking model file or URL (default: ranking_model.pth beside --model, when present)",
    )
    return files


def _listing() -> argparse.ArgumentParser:
    """-k and --movies: the commands that list movies."""
    listing = argparse.ArgumentParser(add_help=False)
    listing.add_argument("-k", type=whole(1), default=10, help="how many movies to show, 1 or more (default 10)")
    _movies_argument(listing)
    return listing


def _add_model_commands(sub) -> None:
    """recommend, similar and metrics: the commands that read a model."""
    files, listing = _model_files(), _listing()
    p = sub.add_parser("recommend", parents=[files, listing], help="top-k movies for a user from the trained models")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", type=int, help="a user id from the export")
    who.add_argument("--rated", help="ratings of someone the model never saw, MOVIE:RATING,... (e.g. 318:5,296:4.5)")
    p.add_argument(
        "--by",
        choices=("ranking", "rating"),
        default="ranking",
        help="order by the ranking model (default) or by predicted rating",
    )
    p.set_defaults(func=cli_read.recommend)
    p = sub.add_parser(
        "similar",
        parents=[files, listing],
        help="movies most like a movie (the ranking model's item-item weights, else movie factors)",
    )
    p.add_argument("--movie", type=int, help="the movie id to find neighbours of")
    p.add_argument("--title", help='or its title, or a part of it (e.g. "toy story"; needs --movies)')
    p.set_defaults(func=cli_read.similar)
    p = sub.add_parser("metrics", parents=[files], help="the published models' validation figures")
    p.set_defaults(func=cli_read.metrics)


def _add_versions(sub, data_args) -> None:
    """models and rollback: the kept versions."""
    p = sub.add_parser("models", parents=[data_args], help="list the kept published models (newest first)")
    p.set_defaults(func=_models)
    p = sub.add_parser("rollback", parents=[data_args], help="publish a kept model version again")
    p.add_argument(
        "version",
        nargs="?",
        help="the version to restore: v3, 3 or v0003 (default: the one before the current)",
    )
    p.add_argument("--ranking", action="store_true", help="roll back the ranking model instead of the rating model")
    p.add_argument(
        "--force",
        action="store_true",
        help="restore a version from the generated demo sample or another export lineage (refused without it)",
    )
    p.set_defaults(func=_rollback)


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="recsys", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"recsys {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_sample(sub)
    _add_model_commands(sub)
    data_args = argparse.ArgumentParser(add_help=False)
    data_args.add_argument(
        "--data-dir",
        default=settings.DATA_DIR.get(),
        help=f"the data folder or URL holding the models (default: {_shown(settings.DATA_DIR.get())}, RECSYS_DATA_DIR)",
    )
    _add_versions(sub, data_args)
    _add_serve(sub, data_args)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ModelFileError, ValueError) as exc:
        print(f"recsys: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a folder that cannot be written, a file that cannot be read
        where = f": {exc.filename}" if exc.filename else ""
        print(f"recsys: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("recsys: interrupted", file=sys.stderr)
        return 130
    except OverflowError:  # an id beyond int64: no export can hold it
        print("recsys: error: an id is out of range (ids are 64-bit integers)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
