"""How recommendations read to a person: movie titles, the "because you rated" reason, display tables.

One helper for the ``recsys`` command and the ``user_recommendations`` asset, so
both name a movie the same way.  Titles come from a MovieLens ``movies.csv``;
control characters in them (terminal escape codes included) are removed, so a
title can never drive the terminal that prints it.
"""

import os
import re

import numpy as np
import pandas as pd

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean_text(text: str) -> str:
    """``text`` without control characters (ESC, BEL, CR, ... are dropped)."""
    return _CONTROL.sub("", text)


def read_titles(path: str | os.PathLike | None, *, required: bool = True) -> pd.Series | None:
    """Titles by movie id from a MovieLens ``movies.csv`` (``movieId,title,...``), or None without a path.

    A path that does not exist is a ``ValueError`` when ``required``, else None."""
    if not path:
        return None
    if not os.path.exists(path):
        if required:
            raise ValueError(f"movies file not found: {os.path.abspath(path)}")
        return None
    try:
        movies = pd.read_csv(path, usecols=["movieId", "title"], dtype={"title": "string"})
    except ValueError as exc:
        raise ValueError(f"{path} is not a MovieLens movies.csv (movieId,title,...): {exc}") from None
    titles = movies.dropna().drop_duplicates("movieId").set_index("movieId")["title"]
    return titles.map(clean_text)


def movie_name(movie_id: int, titles: pd.Series | None) -> str:
    """``"318 (Shawshank Redemption, The (1994))"``, or just the id without a title."""
    title = titles.get(movie_id) if titles is not None else None
    return f"{movie_id} ({title})" if isinstance(title, str) and title else str(movie_id)


def reasons(because_movie_ids: pd.Series, titles: pd.Series | None) -> np.ndarray:
    """``"because you rated <title>"`` per row (``"movie <id>"`` without a title; empty without a reason)."""
    named = (
        because_movie_ids.map(titles).astype(object)
        if titles is not None
        else pd.Series(None, index=because_movie_ids.index, dtype=object)
    )
    label = named.where(named.notna(), "movie " + because_movie_ids.astype(str))
    return np.where(because_movie_ids >= 0, "because you rated " + label, "").astype(object)


def recommendations_table(frame: pd.DataFrame, titles: pd.Series | None) -> pd.DataFrame:
    """The table a person reads: rank, movie, title, predicted rating, score and the reason."""
    shown = pd.DataFrame({"rank": frame["rank"], "movie_id": frame["movie_id"]})
    if titles is not None:
        shown["title"] = frame["movie_id"].map(titles).fillna("")
    shown["predicted"] = frame["predicted_rating"].map(lambda v: f"{v:.2f}")
    if frame.attrs.get("by") == "ranking":
        shown["score"] = frame["score"].map(lambda v: f"{v:.3f}")
        shown["because you rated"] = [movie_name(int(m), titles) if m >= 0 else "" for m in frame["because_movie_id"]]
    elif frame.attrs.get("by") == "popularity":
        shown["ratings"] = frame["score"].map(lambda v: f"{v:,.0f}")
    else:  # by predicted rating: the unclamped value that orders the list
        shown["score"] = frame["score"].map(lambda v: f"{v:.2f}")
    return shown


_YEAR = re.compile(r"\s*\(\d{4}\)\s*$")


def find_movie(titles: pd.Series | None, query: str, known=None) -> int:
    """The movie id whose title matches ``query`` (case-insensitive): a title equal to it (year aside)
    first, else the titles containing it, the shortest (then the lowest id) first. ``known(ids)``, when
    given, keeps the ids a model knows. A ``ValueError`` names what is missing."""
    if titles is None:
        raise ValueError("finding a movie by title needs a MovieLens movies.csv (--movies or RECSYS_MOVIES_PATH)")
    wanted = " ".join(query.lower().split())
    if not wanted:
        raise ValueError("--title needs some text")
    names = titles.str.lower().str.replace(_YEAR, "", regex=True).str.strip()
    matches = titles[names.str.contains(wanted, regex=False)]
    if known is not None and len(matches):
        matches = matches[known(matches.index.to_numpy())]
    if not len(matches):
        raise ValueError(f"no movie title contains {query!r}")
    exact = names[matches.index] == wanted
    order = sorted(matches.index, key=lambda m: (not exact[m], len(matches[m]), m))
    return int(order[0])
