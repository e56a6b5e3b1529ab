"""``clean_rating_data``: typed, valid, de-duplicated ratings plus a quarantine of the rest.

Every input row ends up in exactly one of two tables: the cleaned ratings or
the quarantine, which records the row's source line, its raw text and the
reason it was rejected:

=====================  ===========================================================
reason                 meaning
=====================  ===========================================================
malformed_line         the line does not split into the expected number of fields
missing_field          a required field is empty
non_numeric            an id, rating or timestamp is not a number (ids: not an integer)
invalid_id             a user or movie id is negative
rating_off_scale       the rating is NaN, infinite or outside the rating scale
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

REASONS = (
    "malformed_line",
    "missing_field",
    "non_numeric",
    "invalid_id",
    "rating_off_scale",
    "duplicate_superseded",
)
CLEAN_COLUMNS = ("user_id", "movie_id", "rating", "timestamp")
_INPUT_ALIASES = {"userId": "user_id", "movieId": "movie_id", "itemId": "movie_id", "item_id": "movie_id"}


class DataQualityError(ValueError):
    """Too large a share of the export was rejected to trust the rest."""


@dataclass
class CleanedRatings:
    """The result of :func:`clean_rating_data`."""

    ratings: pd.DataFrame
    quarantine: pd.DataFrame
    reason_counts: dict[str, int] = field(default_factory=dict)

    @property
    def rejected_rows(self) -> int:
        """Rows rejected as invalid (superseded duplicates are not errors)."""
        return sum(n for r, n in self.reason_counts.items() if r != "duplicate_superseded")


def _coerce(values: pd.Series, col: str, error: np.ndarray) -> np.ndarray:
    """Numbers as float64 (NaN where absent); marks unparseable or empty values in ``error``."""
    if pd.api.types.is_numeric_dtype(values.dtype):
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
        absent = np.isnan(numbers) if col != "rating" else np.zeros(len(numbers), dtype=bool)  # NaN rating: off scale
    else:
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        absent = np.array(values.isna())
        unparsed = np.isnan(numbers) & ~absent
        if unparsed.any():
            text = values[unparsed].astype("string").str.strip()
            empty = (text == "").to_numpy()
            is_nan = text.str.lower().isin(["nan", "+nan", "-nan"]).to_numpy()
            idx = np.flatnonzero(unparsed)
            absent[idx[empty]] = True
            bad = idx[~empty & ~(is_nan & (col == "rating"))]
            error[bad[error[bad] == None]] = f"non_numeric:{col}"  # noqa: E711
    if col != "timestamp":
        error[absent & (error == None)] = f"missing_field:{col}"  # noqa: E711
    return numbers


def _standardise(df: pd.DataFrame) -> pd.DataFrame:
    df = df.rename(columns={k: v for k, v in _INPUT_ALIASES.items() if k in df.columns})
    missing = [c for c in ("user_id", "movie_id", "rating") if c not in df.columns]
    if missing:
        raise ValueError(f"ratings table lacks column(s) {', '.join(missing)}; got {list(df.columns)}")
    n = len(df)
    error = df["error"].to_numpy(dtype=object) if "error" in df.columns else np.full(n, None, dtype=object)
    error = np.where(pd.isna(error), None, error)
    out = {"line": df["line"].to_numpy(dtype=np.int64) if "line" in df.columns else np.arange(n, dtype=np.int64) + 2}
    for col in ("user_id", "movie_id", "rating", "timestamp"):
        values = df[col] if col in df.columns else pd.Series(np.nan, index=df.index)
        out[col] = _coerce(values, col, error)
    raw = df["raw"].to_numpy(dtype=object) if "raw" in df.columns else np.full(n, None, dtype=object)
    out["raw"] = np.where(pd.isna(raw), None, raw)
    out["error"] = error
    return pd.DataFrame(out)


def _raw_text(rows: pd.DataFrame) -> list:
    """The raw line where the loader kept it, else the row written back as CSV."""

    def num(v, rating=False):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ""
        return f"{v:g}" if rating else str(int(v))

    out = []
    for raw, u, m, r, t in zip(rows["raw"], rows["user_id"], rows["movie_id"], rows["rating"], rows["timestamp"]):
        out.append(raw if isinstance(raw, str) else f"{num(u)},{num(m)},{num(r, True)},{num(t)}")
    return out


def clean_rating_data(
    df: pd.DataFrame,
    *,
    rating_min: float = 0.5,
    rating_max: float = 5.0,
    max_rejected_fraction: float | None = 0.05,
    source: str = "export",
) -> CleanedRatings:
    """Validate and de-duplicate ratings.

    ``df`` is the output of :class:`~recsys_assets.core.loader.MovieDataLoader`
    (``line, user_id, movie_id, rating, timestamp, error, raw``) or any table
    with MovieLens columns (``userId, movieId, rating[, timestamp]``).

    Raises :class:`DataQualityError` when more than ``max_rejected_fraction``
    of the rows are invalid (superseded duplicates do not count), naming the
    first offending lines.
    """
    if rating_min >= rating_max:
        raise ValueError(f"rating_min ({rating_min}) must be below rating_max ({rating_max})")
    work = _standardise(df)
    n = len(work)
    error = work["error"].to_numpy(dtype=object)
    reason = np.full(n, None, dtype=object)
    detail = np.full(n, "", dtype=object)
    has_error = np.flatnonzero(~pd.isna(error))
    for i in has_error:  # only the rows the loader could not parse
        reason[i], _, detail[i] = str(error[i]).partition(":")
    ok = np.ones(n, dtype=bool)
    ok[has_error] = False

    for col in ("user_id", "movie_id"):
        values = work[col].to_numpy()
        with np.errstate(invalid="ignore"):
            fractional = ok & ((values % 1) != 0)
        reason[fractional] = "non_numeric"
        detail[fractional] = col
        ok &= ~fractional
        negative = ok & (values < 0)
        reason[negative] = "invalid_id"
        detail[negative] = f"{col} is negative"
        ok &= ~negative

    rating = work["rating"].to_numpy()
    with np.errstate(invalid="ignore"):
        off = ok & ~((rating >= rating_min) & (rating <= rating_max))
    reason[off] = "rating_off_scale"
    detail[off] = f"rating outside [{rating_min:g}, {rating_max:g}]"
    ok &= ~off

    valid_idx = np.flatnonzero(ok)
    keys = work.loc[valid_idx, ["user_id", "movie_id"]]
    dup = keys.duplicated(keep=False).to_numpy()
    if dup.any():
        cand = work.loc[valid_idx[dup], ["user_id", "movie_id", "timestamp", "line"]]
        ts = cand["timestamp"].fillna(-np.inf)
        order = np.lexsort((cand["line"].to_numpy(), ts.to_numpy(), cand["movie_id"].to_numpy(), cand["user_id"].to_numpy()))
        ordered = cand.iloc[order]
        last = ~ordered.duplicated(["user_id", "movie_id"], keep="last").to_numpy()
        superseded = ordered.index.to_numpy()[~last]
        reason[superseded] = "duplicate_superseded"
        detail[superseded] = "a later rating of the same (user, movie) was kept"
        ok[superseded] = False

    counts = {r: int(c) for r, c in pd.Series(reason[~ok]).value_counts().items()}
    invalid = sum(c for r, c in counts.items() if r != "duplicate_superseded")
    bad_rows = work.loc[~ok]
    quarantine = pd.DataFrame(
        {
            "line": bad_rows["line"].astype("int64"),
            "raw": pd.array(_raw_text(bad_rows), dtype="string"),
            "raw_rebuilt": bad_rows["raw"].isna().to_numpy(),
            "reason": pd.array(reason[~ok], dtype="string"),
            "detail": pd.array(detail[~ok], dtype="string"),
        }
    ).reset_index(drop=True)
    if max_rejected_fraction is not None and n and invalid / n > max_rejected_fraction:
        examples = "; ".join(
            f"line {r.line}: {r.reason} ({r.detail})"
            for r in quarantine[quarantine["reason"] != "duplicate_superseded"].head(5).itertuples()
        )
        raise DataQualityError(
            f"{source}: {invalid} of {n} rows ({invalid / n:.1%}) were rejected, more than the allowed "
            f"{max_rejected_fraction:.1%}; by reason: {counts}; first: {examples}"
        )

    kept = work.loc[ok]
    ratings = pd.DataFrame(
        {
            "user_id": kept["user_id"].astype("int64").to_numpy(),
            "movie_id": kept["movie_id"].astype("int64").to_numpy(),
            "rating": kept["rating"].astype("float32").to_numpy(),
            "timestamp": kept["timestamp"].fillna(0).astype("int64").to_numpy(),
        }
    )
    return CleanedRatings(ratings=ratings, quarantine=quarantine, reason_counts=counts)
