"""`recsys similar`: likeness, not co-popularity. The shipped models on ml-latest-small, without and with the genres
of its movies.csv.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_similar.py     # about 2 minutes: publishes the models first

For each of the 200 most-rated movies, its top-10 neighbours from ``Recommender.similar_movies`` with and without
``genres``: the mean genre overlap (Jaccard) of a movie with its neighbours, the share of neighbours sharing at
least one genre, and the share of neighbours among the 100 most-rated movies (co-popularity). Then Toy Story's
top 5 both ways. Rewrites the ``bench_similar`` block of docs/benchmarks/index.md.
"""

import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def measure(rec, genres, titles, top_movies: np.ndarray, top100: set) -> dict:
    from recsys_assets.core.ranking.similarity import genre_likeness, genre_matrix

    ids = np.asarray(sorted(set(genres.index)))
    matrix = genre_matrix(genres, ids)
    where = {int(m): i for i, m in enumerate(ids)}
    out = {}
    for name, given in (("models alone", None), ("with genres", genres)):
        jaccard, shares, popular = [], [], []
        for movie in top_movies:
            frame = rec.similar_movies(int(movie), k=10, genres=given)
            likeness = genre_likeness(matrix, where[int(movie)])
            j = np.array([likeness[where[m]] if m in where else 0.0 for m in frame["movie_id"]])
            jaccard.append(j.mean())
            shares.append((j > 0).mean())
            popular.append(np.mean([m in top100 for m in frame["movie_id"]]))
        toy = rec.similar_movies(1, k=5, genres=given)
        out[name] = {
            "jaccard": float(np.mean(jaccard)),
            "share": float(np.mean(shares)),
            "top100": float(np.mean(popular)),
            "toy_story": [str(titles.get(m, m)) for m in toy["movie_id"]],
        }
    return out


def main() -> None:
    import pandas as pd

    from benchmarks.bench_serve import publish_models
    from benchmarks.readme_blocks import replace_block
    from recsys_assets.core.presentation import read_genres, read_titles
    from recsys_assets.core.ranking.similarity import GENRE_WEIGHT
    from recsys_assets.core.recommender import Recommender
    from recsys_assets.settings import movielens_dir

    export = movielens_dir() / "ratings.csv"
    if not export.exists():
        sys.exit(f"{export} not found")
    with tempfile.TemporaryDirectory() as tmp:
        publish_models(Path(tmp) / "data", export, seed=42)
        rec = Recommender.load(Path(tmp) / "data" / "recommendation_model.pth")
    counts = pd.read_csv(export)["movieId"].value_counts()
    titles, genres = read_titles(export.with_name("movies.csv")), read_genres(export.with_name("movies.csv"))
    assert titles is not None and genres is not None
    result = measure(rec, genres, titles, counts.index[:200].to_numpy(), set(counts.index[:100].tolist()))
    lines = [
        "| neighbours of the 200 most-rated movies (top 10) | genre overlap (Jaccard) | share with a genre in common "
        "| share among the 100 most-rated | Toy Story's top 5 |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for name, r in result.items():
        lines.append(
            f"| {name} | {r['jaccard']:.3f} | {r['share']:.2f} | {r['top100']:.2f} | {'; '.join(r['toy_story'])} |"
        )
    lines += [
        "",
        f"(`benchmarks/bench_similar.py`: the shipped models published from ml-latest-small; with genres, "
        f"`GENRE_WEIGHT` {GENRE_WEIGHT:g} times the genre overlap is added to the item-item similarity)",
    ]
    text = "\n".join(lines)
    print(text)
    replace_block("bench_similar", text)


if __name__ == "__main__":
    main()
