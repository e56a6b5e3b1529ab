"""How recommendations read to a person: movie titles, the "because you rated" reason, display tables.

One helper for the ``recsys`` command and the ``user_recommendations`` asset, so
both name a movie the same way.  Titles come from a MovieLens ``movies.csv``;
control and format characters in them (terminal escape codes, bidi overrides, zero-width
characters included) are removed, so a title can never drive the terminal that prints it nor
reorder the text around it; :func:`markdown_cell` escapes a text for the UI's markdown.
"""

import logging
import os
import re
import unicodedata

import numpy as np
import pandas as pd

from recsys_assets.core.numbers import parse_text

log = logging.getLogger(__name__)

# Cc: control characters (ESC, BEL, CR, ...); Cf: format characters (bidi overrides and isolates,
# zero-width spaces and joiners, soft hyphen, ...); Cs: lone surrogates (not encodable as UTF-8)
_DROPPED = frozenset(("Cc", "Cf", "Cs"))
_SEPARATORS = frozenset(("Zl", "Zp"))  # line and paragraph separators: read as a space


def _kept(ch: str) -> str:
    category = unicodedata.category(ch)
    return "" if category in _DROPPED else " " if category in _SEPARATORS else ch


def clean_text(text: str) -> str:
    """``text`` without control, format (bidi, zero-width) or surrogate characters; line and paragraph
    separators become spaces."""
    if text.isprintable():  # the common case: nothing to drop (isprintable is False for all of the above)
        return text
    return "".join(map(_kept, text))


# every ASCII punctuation character that means something in (GitHub-flavoured) markdown: emphasis, code,
# links and images, HTML, headings, lists, tables, entities, autolinks (CommonMark lets any be escaped)
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~&:@$=])")


def markdown_cell(text: object) -> str:
    """``text`` as literal text in one markdown table cell: on one line, cleaned (:func:`clean_text`), every markdown
    character backslash-escaped (so ``|`` stays in its cell and ``![x](http://...)`` is no image)."""
    return _MARKDOWN.sub(r"\\\1", clean_text(" ".join(str(text).split())))


def _cell(value: object) -> str:
    return (
        "" if value is None or value is pd.NA or (isinstance(value, float) and value != value) else markdown_cell(value)
    )


def markdown_table(frame: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """``frame`` as a markdown table whose headers and text cells are :func:`markdown_cell` (numbers
    formatted by ``floatfmt``); plain text when ``tabulate`` (optional) is missing."""
    text = [i for i in range(frame.shape[1]) if not pd.api.types.is_numeric_dtype(frame.iloc[:, i])]
    columns = [frame.iloc[:, i].map(_cell) if i in text else frame.iloc[:, i] for i in range(frame.shape[1])]
    shown = pd.concat(columns, axis=1, keys=range(frame.shape[1])) if columns else frame.copy()
    shown.columns = [markdown_cell(name) for name in frame.columns]
    try:
        return shown.to_markdown(index=False, floatfmt=floatfmt, disable_numparse=text or False)
    except ImportError:  # tabulate is optional
        return shown.to_string(index=False)


def read_titles(path: str | os.PathLike | None, *, required: bool = True) -> pd.Series | None:
    """Titles by movie id from a MovieLens ``movies.csv`` (``movieId,title,...``), or None without a path.

    A row whose movieId is not a 64-bit integer or that has no title is skipped, and only that row: the
    count is logged and kept in ``attrs["skipped_rows"]`` (the callers show it). A path that does not
    exist is a ``ValueError`` when ``required``, else None."""
    if not path:
        return None
    if not os.path.exists(path):
        if required:
            raise ValueError(f"movies file not found: {os.path.abspath(path)}")
        return None
    try:
        movies = pd.read_csv(path, usecols=["movieId", "title"], dtype="string")
    except ValueError as exc:
        raise ValueError(f"{path} is not a MovieLens movies.csv (movieId,title,...): {exc}") from None
    ids = parse_text(movies["movieId"])  # the export's id rule: exact 64-bit integers
    good = ids.integral & movies["title"].notna().to_numpy()
    titles = pd.Series(movies["title"].to_numpy()[good], index=ids.ints[good], name="title", dtype="string")
    titles = titles[~titles.index.duplicated()].map(clean_text)
    titles.attrs["skipped_rows"] = skipped = int((~good).sum())
    if skipped:
        log.warning(f"{path}: skipped {skipped:,} of {len(movies):,} rows (movieId not an integer, or no title)")
    return titles


def read_genres(path: str | os.PathLike | None) -> pd.Series | None:
    """Genres by movie id from a MovieLens ``movies.csv`` (``movieId,title,genres``: ``"Animation|Comedy"``), or
    None without a path, a ``genres`` column or any genre. Rows like :func:`read_titles` skips are skipped, and
    MovieLens's ``(no genres listed)`` counts as none."""
    if not path or not os.path.exists(path):
        return None
    try:
        movies = pd.read_csv(path, usecols=["movieId", "genres"], dtype="string")
    except ValueError:  # no genres column: similar movies go by the models alone
        return None
    ids = parse_text(movies["movieId"])
    listed = movies["genres"].fillna("").replace("(no genres listed)", "")
    good = ids.integral & (listed != "").to_numpy()
    if not good.any():
        return None
    genres = pd.Series(listed.to_numpy()[good], index=ids.ints[good], name="genres", dtype="string")
    return genres[~genres.index.duplicated()]


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
    """The movie id whose title matches ``query`` best (the first of :func:`matching_movies`)."""
    return matching_movies(titles, query, known)[0]


def matching_movies(titles: pd.Series | None, query: str, known=None) -> list[int]:
    """The movie ids whose title matches ``query`` (case-insensitive), best first: a title equal to it (year
    aside) first, then the titles containing it, the shortest (then the lowest id) first. ``known(ids)``,
    when given, keeps the ids a model knows. A ``ValueError`` names what is missing."""
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
    return [int(m) for m in order]
