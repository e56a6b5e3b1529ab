"""The MovieLens data sets the ranking benchmarks use, read from outside the repository (never copied in).

* ml-latest-small: ``../shared/datasets/ml-latest-small/ratings.csv`` beside the repository.
* MovieLens 100K: the path in ``RECSYS_ML100K`` (or ``--ml100k``): the GroupLens ``u.data``
  (tab-separated, no header) or RecBole's ``ml-100k.inter`` (which the ``recbole`` wheel ships:
  ``pip install --no-deps --target /tmp/recbole recbole``, then
  ``RECSYS_ML100K=/tmp/recbole/recbole/dataset_example/ml-100k/ml-100k.inter``). Skipped when unset.
"""

import os
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
ML_SMALL = ROOT.parent / "shared" / "datasets" / "ml-latest-small" / "ratings.csv"


def read_ratings(path: str | os.PathLike) -> pd.DataFrame:
    """``user_id, movie_id, rating`` from a MovieLens ratings.csv, a ``u.data`` or a RecBole ``.inter`` file."""
    path = Path(path)
    if path.suffix == ".csv":
        frame = pd.read_csv(path)
    else:
        header = path.open().readline()
        frame = pd.read_csv(path, sep="\t", header=0 if ":" in header else None)
    frame = frame.iloc[:, :3]
    frame.columns = ["user_id", "movie_id", "rating"]
    return frame.astype({"user_id": "int64", "movie_id": "int64", "rating": "float32"})


def data_sets(ml100k: str | None = None) -> dict[str, pd.DataFrame]:
    """The data sets at hand, by name (ml-latest-small first)."""
    out = {}
    if ML_SMALL.exists():
        out["ml-latest-small"] = read_ratings(ML_SMALL)
    path = ml100k or os.environ.get("RECSYS_ML100K")
    if path and Path(path).exists():
        out["MovieLens 100K"] = read_ratings(path)
    return out
