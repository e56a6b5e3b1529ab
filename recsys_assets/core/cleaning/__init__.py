"""``clean_rating_data``: typed, valid, de-duplicated ratings plus a quarantine of the rest.

Every input row ends up in exactly one of two tables: the cleaned ratings or
the quarantine, which records the row's source line, its raw text and the
reason it was rejected:

=====================  ===========================================================
reason                 meaning
=====================  ===========================================================
malformed_line         the line does not split into the expected number of fields, has a carriage
                       return inside it, or is longer than the loader's ``max_line_bytes``
invalid_encoding       the line is not valid UTF-8
missing_field          a required field is empty
non_numeric            an id, rating or timestamp is not a number (ids: not an integer)
invalid_id             a user or movie id is negative or does not fit int64
rating_off_scale       the rating is NaN, infinite or outside the rating scale (``core/rating_scale.py``)
duplicate_superseded   the same (user, movie) was rated again later; the latest wins
=====================  ===========================================================

Quarantine columns: ``line`` (1-based line in the export), ``raw`` (the line's
text), ``raw_rebuilt`` (True where the loader parsed the row and ``raw`` was
written back from its values; the ``cleaned_ratings`` asset replaces those
with the exact lines from the export), ``reason`` and ``detail``.
"""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recsys_assets.core import rating_scale
from recsys_assets.core.cleaning.columns import INT64_MIN, Column, Work, raw_text, standardise
from recsys_assets.core.formats import CANONICAL_COLUMNS

REASONS = (
    "malformed_line",
    "invalid_encoding",
    "missing_field",
    "non_numeric",
    "invalid_id",
    "rating_off_scale",
    "duplicate_superseded",
)
CLEAN_COLUMNS = CANONICAL_COLUMNS


class DataQualityError(ValueError):
    """Too large a share of the export was rejected to trust the rest.

    ``quarantine`` holds the rejected rows (line, raw, reason, detail) so they can still be inspected."""

    def __init__(self, message: str, quarantine: pd.DataFrame | None = None):
        super().__init__(message)
        self.quarantine = quarantine


@dataclass
class CleanedRatings:
    """The result of :func:`clean_rating_data`."""

    ratings: pd.DataFrame
    quarantine: pd.DataFrame
    reason_counts: dict[str, int] = field(default_factory=dict)


def _duplicate_candidates(user: np.ndarray, movie: np.ndarray) -> np.ndarray | None:
    """Positions of rows whose (user, movie) pair occurs more than once, or ``None`` when every pair is unique.

    Ids are non-negative int64 here.  The pair becomes one int64 key when the
    id ranges allow it (a sort-free check first: exports are often sorted by
    user and movie), else the exact pandas hash path on the two int64 columns.
    """
    if len(user) < 2:
        return None
    n_movies = int(movie.max()) + 1
    if (int(user.max()) + 1) * n_movies < 2**63:
        key = user * n_movies
        key += movie
        if (key[1:] > key[:-1]).all():
            return None
        if (key[1:] >= key[:-1]).all():
            ordered = key
        else:
            ordered = np.sort(key)
            same = ordered[1:] == ordered[:-1]
            if not same.any():
                return None
            return np.flatnonzero(np.isin(key, ordered[1:][same]))
        same = ordered[1:] == ordered[:-1]
        dup = np.zeros(len(key), dtype=bool)
        dup[1:] |= same
        dup[:-1] |= same
        return np.flatnonzero(dup)
    dup = pd.DataFrame({"u": user, "m": movie}).duplicated(keep=False).to_numpy()
    return np.flatnonzero(dup) if dup.any() else None


def clean_rating_data(
    df: pd.DataFrame,
    *,
    rating_min: float | None = None,
    rating_max: float | None = None,
    max_rejected_fraction: float | None = 0.05,
    source: str = "export",
) -> CleanedRatings:
    """Validate and de-duplicate ratings.

    ``df`` is the output of :class:`~recsys_assets.core.ingest.MovieDataLoader`
    (``line, user_id, movie_id, rating, timestamp, error, raw``) or any table
    with MovieLens columns (``userId, movieId, rating[, timestamp]``).

    Ids and timestamps are handled as exact int64 (ids above 2**53 and
    nanosecond timestamps keep every digit); a table where the loader parsed
    every row and every row is valid is never copied row by row.

    Raises :class:`DataQualityError` when more than ``max_rejected_fraction``
    of the rows are invalid (superseded duplicates do not count), naming the
    first offending lines.
    """
    rating_min, rating_max = rating_scale.bounds(rating_min, rating_max)  # unset: the scale (core/rating_scale.py)
    if max_rejected_fraction is not None and not 0 <= max_rejected_fraction <= 1:  # NaN fails too
        raise ValueError(f"max_rejected_fraction must be between 0 and 1, got {max_rejected_fraction}")
    work = standardise(df)
    verdict = _Verdict(work)
    _reject_invalid(work, verdict, rating_min, rating_max)
    _reject_superseded(work, verdict)
    bad = verdict.rejected()
    quarantine, counts = _quarantine(work, verdict, bad)
    invalid = sum(c for r, c in counts.items() if r != "duplicate_superseded")
    if max_rejected_fraction is not None and work.n and invalid / work.n > max_rejected_fraction:
        raise _too_many_rejected(quarantine, counts, invalid, work.n, max_rejected_fraction, source=source)
    kept = None if len(bad) == 0 else np.flatnonzero(verdict.code == 0)
    return CleanedRatings(ratings=_kept_ratings(work, kept), quarantine=quarantine, reason_counts=counts)


class _Verdict:
    """A code per row: 0 kept, -1 a parse error (reason:detail in ``work.errors``), k > 0 ``rules[k - 1]``;
    the first rule that rejects a row names its reason."""

    def __init__(self, work: Work):
        self.code = np.zeros(work.n, dtype=np.int8)
        self.rules: list[tuple[str, str]] = []
        self.parse_errors = work.errors.codes
        if self.parse_errors is not None:
            self.code[self.parse_errors != None] = -1  # noqa: E711

    def reject(self, mask: np.ndarray, reason: str, detail: str) -> None:
        mask = mask & (self.code == 0)
        if mask.any():
            self.rules.append((reason, detail))
            self.code[mask] = len(self.rules)

    @property
    def all_valid(self) -> bool:
        return not self.rules and self.parse_errors is None

    def rejected(self) -> np.ndarray:
        """Positions of the rejected rows."""
        return np.zeros(0, dtype=np.int64) if self.all_valid else np.flatnonzero(self.code != 0)


def _reject_invalid(work: Work, verdict: _Verdict, rating_min: float, rating_max: float) -> None:
    """Ids that are not non-negative int64 integers, ratings off the scale."""
    for col, column in (("user_id", work.user_id), ("movie_id", work.movie_id)):
        if column.out_of_range is not None:
            verdict.reject(column.out_of_range, "invalid_id", f"{col} does not fit int64")
        if column.unusable is not None:  # not an integer (fractional, infinite)
            verdict.reject(column.unusable, "non_numeric", col)
        verdict.reject(column.ints < 0, "invalid_id", f"{col} is negative")
    with np.errstate(invalid="ignore"):
        verdict.reject(
            ~((work.rating >= rating_min) & (work.rating <= rating_max)),
            "rating_off_scale",
            f"rating outside [{rating_min:g}, {rating_max:g}]",
        )


def _reject_superseded(work: Work, verdict: _Verdict) -> None:
    """Of the valid rows rating one (user, movie) pair, the latest timestamp wins, then the later line."""
    valid_idx = None if verdict.all_valid else np.flatnonzero(verdict.code == 0)
    user = work.user_id.ints if valid_idx is None else work.user_id.ints[valid_idx]
    movie = work.movie_id.ints if valid_idx is None else work.movie_id.ints[valid_idx]
    cand = _duplicate_candidates(user, movie)
    if cand is None:
        return
    rows = cand if valid_idx is None else valid_idx[cand]  # the exact rule on the candidates only
    u, m = work.user_id.ints[rows], work.movie_id.ints[rows]
    order = np.lexsort((work.line[rows], _timestamp_order(work.timestamp, rows), m, u))
    us, ms = u[order], m[order]
    last = np.ones(len(rows), dtype=bool)
    last[:-1] = (us[1:] != us[:-1]) | (ms[1:] != ms[:-1])
    superseded = np.zeros(work.n, dtype=bool)
    superseded[rows[order][~last]] = True
    verdict.reject(superseded, "duplicate_superseded", "a later rating of the same (user, movie) was kept")


def _timestamp_order(ts: Column, rows: np.ndarray) -> np.ndarray:
    """The rows' timestamps as a sort key, a missing timestamp before every other."""
    if ts.floats is not None:
        order_ts = ts.floats[rows]
        return np.where(np.isnan(order_ts), -np.inf, order_ts)
    order_ts = ts.ints[rows]
    return order_ts if ts.absent is None else np.where(ts.absent[rows], INT64_MIN, order_ts)


def _quarantine(work: Work, verdict: _Verdict, bad: np.ndarray) -> tuple[pd.DataFrame, dict[str, int]]:
    """The rejected rows with their line, raw text, reason and detail; and the count per reason."""
    bad_codes = verdict.code[bad]
    reason = np.empty(len(bad), dtype=object)
    detail = np.empty(len(bad), dtype=object)
    parse = bad_codes == -1
    if parse.any() and verdict.parse_errors is not None:  # parse failures come with their codes
        for j, text in zip(np.flatnonzero(parse).tolist(), verdict.parse_errors[bad[parse]].tolist()):
            reason[j], _, detail[j] = str(text).partition(":")
    for k, (r, d) in enumerate(verdict.rules, start=1):
        sel = bad_codes == k
        reason[sel] = r
        detail[sel] = d
    counts = {r: int(c) for r, c in pd.Series(reason, dtype=object).value_counts().items()}
    raw, rebuilt = raw_text(work, bad)
    quarantine = pd.DataFrame(
        {
            "line": work.line[bad].astype(np.int64),
            "raw": pd.array(raw, dtype="string"),
            "raw_rebuilt": rebuilt,
            "reason": pd.array(reason, dtype="string"),
            "detail": pd.array(detail, dtype="string"),
        }
    )
    return quarantine, counts


def _too_many_rejected(
    quarantine: pd.DataFrame, counts: dict, invalid: int, n: int, allowed: float, *, source: str
) -> DataQualityError:
    examples = "; ".join(
        f"line {r.line}: {r.reason} ({r.detail})"
        for r in quarantine[quarantine["reason"] != "duplicate_superseded"].head(5).itertuples()
    )
    return DataQualityError(
        f"{source}: {invalid} of {n} rows ({invalid / n:.1%}) were rejected, more than the allowed "
        f"{allowed:.1%}; by reason: {counts}; first: {examples}",
        quarantine=quarantine.drop(columns="raw_rebuilt"),
    )


def _kept_ratings(work: Work, kept: np.ndarray | None) -> pd.DataFrame:
    """The kept rows (``kept`` None: every row, with no row selection; int64 input columns are shared
    copy-on-write)."""

    def output(column: Column) -> pd.Series | np.ndarray:
        if kept is None and column.source is not None:
            return column.source.reset_index(drop=True).rename(None)
        return column.ints.copy() if kept is None else column.ints[kept]

    return pd.DataFrame(
        {
            "user_id": output(work.user_id),
            "movie_id": output(work.movie_id),
            "rating": (work.rating if kept is None else work.rating[kept]).astype(np.float32),
            "timestamp": output(work.timestamp),
        },
        copy=False,
    )
