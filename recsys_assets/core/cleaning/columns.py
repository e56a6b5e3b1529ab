"""An export's columns read for cleaning: ids and timestamps as exact int64, ratings as float64, each
row's first parse error (``reason:detail``), and a rejected row's text written back when the loader did
not keep its line."""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys_assets.core import numbers
from recsys_assets.core.formats import REQUIRED_COLUMNS, resolve_columns

INT64_MIN = np.iinfo(np.int64).min
_TWO63 = float(2**63)


@dataclass
class Column:
    """One id or timestamp column as exact int64 values, plus what could not be used."""

    ints: np.ndarray  # int64; 0 where absent or unusable
    absent: np.ndarray | None = None  # bool; None: nothing absent
    floats: np.ndarray | None = None  # float64 source values, only when the input was not integer-typed
    unusable: np.ndarray | None = None  # bool: not integral, not finite or out of int64 range
    out_of_range: np.ndarray | None = None  # bool: a whole number beyond int64 (part of ``unusable``)
    source: pd.Series | None = None  # the input column, when ``ints`` is exactly its values (int64, no nulls)


class Errors:
    """Per-row parse error codes (``reason:detail``); the first one recorded for a row wins."""

    def __init__(self, n: int):
        self.n = n
        self.codes: np.ndarray | None = None  # object array, allocated at the first error

    def add(self, mask: np.ndarray, code: str) -> None:
        if not mask.any():
            return
        if self.codes is None:
            self.codes = np.full(self.n, None, dtype=object)
        self.codes[mask & (self.codes == None)] = code  # noqa: E711


def _is_int_dtype(dtype) -> bool:
    return pd.api.types.is_integer_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def _int_column(values: pd.Series | None, col: str, n: int, errors: Errors) -> Column:
    """An id or timestamp column as exact int64 (never through float64 when the input is integer)."""
    if values is None:
        return Column(np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool))
    if _is_int_dtype(values.dtype):
        absent = values.isna().to_numpy(dtype=bool) if values.hasnans else None
        if absent is None and values.dtype == np.int64:
            return Column(values.to_numpy(), source=values)
        return Column(values.to_numpy(dtype=np.int64, na_value=0), absent)
    if pd.api.types.is_float_dtype(values.dtype):
        floats = values.to_numpy(dtype=np.float64, na_value=np.nan)
        absent = np.isnan(floats)
        with np.errstate(invalid="ignore"):
            in_range = np.abs(floats) < _TWO63  # False for inf and NaN
            unusable = ~absent & ~(in_range & (floats % 1 == 0))
            out_of_range = ~absent & np.isfinite(floats) & ~in_range
        ints = np.where(in_range, floats, 0).astype(np.int64)  # fractional values truncate (timestamps keep them so)
        return Column(
            ints,
            absent if absent.any() else None,
            floats,
            unusable if unusable.any() else None,
            out_of_range=out_of_range if out_of_range.any() else None,
        )
    # text or mixed objects: the shared number rule; whole numbers keep their exact value
    parsed = numbers.parse_text(values)
    errors.add(parsed.unparsed | parsed.nan_text, f"non_numeric:{col}")
    absent = parsed.absent | parsed.unparsed | parsed.nan_text
    absent_or_none = absent if absent.any() else None
    if (parsed.integral | absent).all():
        return Column(parsed.ints, absent_or_none)
    floats = np.where(absent, np.nan, parsed.floats)
    with np.errstate(invalid="ignore"):
        truncated = np.where(np.abs(floats) < _TWO63, floats, 0).astype(np.int64)  # fractional values truncate
    ints = np.where(parsed.integral, parsed.ints, truncated)
    unusable = ~absent & ~parsed.integral
    out_of_range = parsed.out_of_range if parsed.out_of_range.any() else None
    return Column(ints, absent_or_none, floats, unusable if unusable.any() else None, out_of_range=out_of_range)


@dataclass
class Work:
    n: int
    line: np.ndarray
    user_id: Column
    movie_id: Column
    timestamp: Column
    rating: np.ndarray  # float64, NaN where absent or not a number
    rating_absent: np.ndarray | None
    errors: Errors
    raw: pd.Series | None


def standardise(df: pd.DataFrame) -> Work:
    names = list(df.columns)
    aliases = {names[i]: canon for canon, i in resolve_columns(names).items() if canon not in df.columns}
    df = df.rename(columns=aliases)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"ratings table lacks column(s) {', '.join(missing)}; got {list(df.columns)}")
    n = len(df)
    errors = Errors(n)
    if "error" in df.columns:
        loader_error = df["error"]
        has_error = loader_error.notna().to_numpy(dtype=bool)
        if has_error.any():  # the loader's codes come first
            errors.codes = np.full(n, None, dtype=object)
            errors.codes[has_error] = loader_error.to_numpy(dtype=object)[has_error]
    line = df["line"].to_numpy(dtype=np.int64) if "line" in df.columns else np.arange(n, dtype=np.int64) + 2
    # per column: its parse errors, then its missing values (the first code of a row wins)
    user = _int_column(df["user_id"], "user_id", n, errors)
    if user.absent is not None:
        errors.add(user.absent, "missing_field:user_id")
    movie = _int_column(df["movie_id"], "movie_id", n, errors)
    if movie.absent is not None:
        errors.add(movie.absent, "missing_field:movie_id")

    values = df["rating"]
    rating_absent = None
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        rating = values.to_numpy(dtype=np.float64, na_value=np.nan)  # NaN: off the scale, not missing
    else:
        parsed = numbers.parse_text(values)
        errors.add(parsed.unparsed, "non_numeric:rating")
        rating, rating_absent = parsed.floats, parsed.absent
        if rating_absent.any():
            errors.add(rating_absent, "missing_field:rating")
        else:
            rating_absent = None
    timestamp = _int_column(df["timestamp"] if "timestamp" in df.columns else None, "timestamp", n, errors)
    if timestamp.unusable is not None:  # absent timestamps become 0 and fractional ones truncate,
        with np.errstate(invalid="ignore"):  # but inf or beyond int64 is not a number
            out_of_range = timestamp.unusable & ~(np.abs(timestamp.floats) < _TWO63)
        errors.add(out_of_range, "non_numeric:timestamp")
    raw = df["raw"] if "raw" in df.columns else None
    return Work(n, line, user, movie, timestamp, rating, rating_absent, errors, raw)


def _number_text(col: Column, i: int) -> str:
    if col.absent is not None and col.absent[i]:
        return ""
    if col.floats is not None and col.unusable is not None and col.unusable[i]:
        return f"{col.floats[i]:g}"
    return str(int(col.ints[i]))


def raw_text(work: Work, rows: np.ndarray) -> tuple[list, np.ndarray]:
    """The raw line where the loader kept it, else the row written back as CSV; and which were rebuilt."""
    if len(rows) == 0:
        return [], np.zeros(0, dtype=bool)
    if work.raw is not None:
        raw = work.raw.iloc[rows].to_numpy(dtype=object)
        rebuilt = pd.isna(raw)
    else:
        raw = np.full(len(rows), None, dtype=object)
        rebuilt = np.ones(len(rows), dtype=bool)
    out = []
    for j, i in enumerate(rows.tolist()):
        if not rebuilt[j]:
            out.append(raw[j])
            continue
        r = work.rating[i]
        rating = "" if np.isnan(r) else f"{r:g}"
        out.append(
            f"{_number_text(work.user_id, i)},{_number_text(work.movie_id, i)},{rating},{_number_text(work.timestamp, i)}"
        )
    return out, np.asarray(rebuilt, dtype=bool)
