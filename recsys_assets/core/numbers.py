"""Lenient parsing of numbers written as text: the one rule shared by the loader and cleaning.

Both the loader's exact line-by-line path (:mod:`recsys_assets.core.ingest.parse`)
and :func:`recsys_assets.core.cleaning.clean_rating_data` turn text fields into
numbers through :func:`parse_text`, so a spelling accepted by one is accepted
by the other:

* surrounding whitespace is ignored; a null or blank field is *absent*;
* anything ``float()`` accepts is a number (``2``, ``2.0``, ``1e3``, ``inf``);
* the spellings in :data:`NAN_SPELLINGS` are a number (NaN): a NaN rating is
  off the scale rather than unparseable; as an id it is not an integer;
* a field written as an integer (``[+-]digits``) keeps its exact value, even
  above 2**53 where float64 would round it: ids and nanosecond timestamps
  never go through float64.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

# Text that means "not a number" rather than "unparseable"; compared lower-cased.
# Read at call time, so extending it reaches every user.
NAN_SPELLINGS = frozenset({"nan", "+nan", "-nan"})

INT64_MIN = int(np.iinfo(np.int64).min)
INT64_MAX = int(np.iinfo(np.int64).max)
_TWO53 = float(2**53)
_TWO63 = float(2**63)


@dataclass(kw_only=True)
class TextNumbers:
    """The result of :func:`parse_text`: one entry per input value."""

    floats: np.ndarray  # float64; NaN where absent, unparsed or a NaN spelling
    absent: np.ndarray  # bool: null or blank
    unparsed: np.ndarray  # bool: present but not a number (NaN spellings are numbers)
    nan_text: np.ndarray  # bool: one of NAN_SPELLINGS
    ints: np.ndarray  # int64: the exact value where ``integral`` (else 0)
    integral: np.ndarray  # bool: a whole number that fits int64
    out_of_range: np.ndarray  # bool: a whole number beyond int64


def parse_text(values: pd.Series | np.ndarray) -> TextNumbers:
    """Parse text (or mixed objects) leniently; see the module docs for the rule."""
    series = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
    text = series.astype("string").str.strip()
    absent = (text.isna() | (text == "")).to_numpy(dtype=bool, na_value=True)
    floats = pd.to_numeric(text.mask(absent), errors="coerce")
    floats = np.asarray(pd.Series(floats).to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    nan_mask = np.isnan(floats) & ~absent
    nan_text = np.zeros(len(floats), dtype=bool)
    if nan_mask.any():
        idx = np.flatnonzero(nan_mask)
        lowered = text.iloc[idx].str.lower()
        nan_text[idx] = lowered.isin(list(NAN_SPELLINGS)).to_numpy(dtype=bool, na_value=False)
    unparsed = nan_mask & ~nan_text
    ints, integral, out_of_range = _exact_ints(text, floats)
    return TextNumbers(
        floats=floats,
        absent=absent,
        unparsed=unparsed,
        nan_text=nan_text,
        ints=ints,
        integral=integral,
        out_of_range=out_of_range,
    )


def _exact_ints(text: pd.Series, floats: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact int64 values of whole numbers: digits are re-read exactly where float64 would round."""
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(floats)
        whole = finite & (np.mod(floats, 1.0, where=finite, out=np.zeros_like(floats)) == 0)
        small = whole & (np.abs(floats) < _TWO53)
    ints = np.zeros(len(floats), dtype=np.int64)
    ints[small] = floats[small].astype(np.int64)
    integral = small.copy()
    out_of_range = np.zeros(len(floats), dtype=bool)
    for i in np.flatnonzero(whole & ~small).tolist():  # rare: |value| >= 2**53
        s = text.iat[i]
        digits = s[1:] if s[:1] in "+-" else s
        if digits.isdigit() and digits.isascii():
            exact = int(s)
        else:  # written as a float (1e19, 2.0e17): its float value is what it says
            exact = int(floats[i])
        if INT64_MIN <= exact <= INT64_MAX:
            ints[i] = exact
            integral[i] = True
        else:
            out_of_range[i] = True
    return ints, integral, out_of_range
