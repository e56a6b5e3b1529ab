"""Recognising the layout of a ratings export: delimiter, header and column order.

Supported out of the box:

* MovieLens ``ratings.csv`` (``userId,movieId,rating,timestamp`` header), LF or
  CRLF, UTF-8 with or without a byte-order mark;
* any delimited file whose header names the columns with a known alias
  (``user_id``, ``item_id``, ``score`` ...) or through an explicit column map;
* MovieLens ``ratings.dat`` (``::``-separated, no header) and ``u.data``
  (tab-separated, no header), in the order user, movie, rating, timestamp.

This module is also the one home of the export schema: the canonical column
names, which of them are required, and the aliases by which a header (or a
table handed to :func:`recsys_assets.core.cleaning.clean_rating_data`) may
name them (:func:`resolve_columns`).
"""

from dataclasses import dataclass

CANONICAL_COLUMNS = ("user_id", "movie_id", "rating", "timestamp")
REQUIRED_COLUMNS = ("user_id", "movie_id", "rating")
BOM = b"\xef\xbb\xbf"
DAT_SEPARATOR = b"::"
DAT_REPLACEMENT = b"\x1f"  # one-byte stand-in for "::", which never occurs in ratings

_ALIASES = {
    "user_id": {"userid", "user_id", "user", "uid", "users"},
    "movie_id": {"movieid", "movie_id", "movie", "itemid", "item_id", "item", "iid", "movies"},
    "rating": {"rating", "ratings", "score", "stars", "value"},
    "timestamp": {"timestamp", "time", "ts", "unix_timestamp", "date"},
}


class ExportError(ValueError):
    """The export cannot be loaded at all (missing, empty, header only, unrecognisable)."""


class ExportFormatError(ValueError):
    """The export's layout cannot be recognised (no header match, no known separator)."""


@dataclass(frozen=True)
class ExportFormat:
    """How to split a line into fields and which field holds which column."""

    delimiter: bytes  # a single byte after normalisation (``::`` is replaced by DAT_REPLACEMENT)
    has_header: bool
    field_names: tuple[str, ...]  # one name per field in the file
    columns: dict[str, int]  # canonical column -> field position
    double_colon: bool = False  # the raw file uses "::" and must be normalised

    @property
    def n_fields(self) -> int:
        return len(self.field_names)


def _normalise_name(name: str) -> str:
    return name.strip().strip('"').strip("'").strip().lower().replace(" ", "_").replace("-", "_")


def resolve_columns(names, column_map: dict[str, str] | None = None) -> dict[str, int]:
    """Canonical column -> position of the first name in ``names`` that means it.

    Names are compared normalised (case, surrounding quotes and spaces, ``-``
    and spaces as ``_``) against :data:`_ALIASES` and ``column_map`` (a name in
    the file -> a canonical column, which extends the aliases).
    """
    lookup = {alias: canon for canon, aliases in _ALIASES.items() for alias in aliases}
    for src, canon in (column_map or {}).items():
        if canon not in CANONICAL_COLUMNS:
            raise ExportFormatError(f"column_map target {canon!r} is not one of {', '.join(CANONICAL_COLUMNS)}")
        lookup[_normalise_name(src)] = canon
    normalised = [_normalise_name(str(n)) for n in names]
    columns: dict[str, int] = {}
    for i, name in enumerate(normalised):
        canon = lookup.get(name)
        if canon is not None and canon not in columns:
            columns[canon] = i
    return columns


def _looks_numeric(field: str) -> bool:
    try:
        float(field.strip().strip('"'))
    except ValueError:
        return False
    return True


_DELIMITERS = ("::", "\t", ",", ";", "|")  # tried in this order: the first one the line holds is the separator


def _detect_delimiter(text: str, source: str) -> str:
    found = next((d for d in _DELIMITERS if d in text), None)
    if found is None:
        raise ExportFormatError(
            f"{source}: cannot recognise a separator in the first line {text[:80]!r}; "
            "expected comma, tab, ';', '|' or '::'"
        )
    return found


def detect_format(
    first_line: bytes,
    *,
    delimiter: str | None = None,
    has_header: bool | None = None,
    column_map: dict[str, str] | None = None,
    source: str = "export",
) -> ExportFormat:
    """Work out the layout from the file's first line (BOM and line ending already removed).

    ``column_map`` maps a header name in the file to a canonical column
    (``user_id``, ``movie_id``, ``rating``, ``timestamp``); it extends the
    built-in aliases.  ``delimiter`` and ``has_header`` override detection.
    """
    text = first_line.decode("utf-8", errors="replace")
    if delimiter is None:
        delimiter = _detect_delimiter(text, source)
    double_colon = delimiter == "::"
    if not double_colon and len(delimiter.encode()) != 1:
        raise ExportFormatError(f"{source}: delimiter must be one character or '::', got {delimiter!r}")
    fields = text.split(delimiter)
    if has_header is None:
        has_header = not all(_looks_numeric(f) for f in fields if f.strip())

    if not has_header:
        if len(fields) < 3:
            raise ExportFormatError(
                f"{source}: a file without header needs at least 3 fields "
                f"(user, movie, rating[, timestamp]); the first line has {len(fields)}"
            )
        names = tuple(CANONICAL_COLUMNS[i] if i < 4 else f"extra_{i}" for i in range(len(fields)))
        columns = {name: i for i, name in enumerate(names) if name in CANONICAL_COLUMNS}
    else:
        names = tuple(_normalise_name(f) for f in fields)
        columns = resolve_columns(names, column_map)
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise ExportFormatError(
                f"{source}: line 1: no recognizable column for {', '.join(missing)} in header "
                f"{text[:120]!r}; expected MovieLens 'userId,movieId,rating,timestamp' or set "
                'column_map (for example {"user": "user_id"})'
            )
    sep = DAT_REPLACEMENT if double_colon else delimiter.encode()
    return ExportFormat(
        delimiter=sep,
        has_header=has_header,
        field_names=names,
        columns=columns,
        double_colon=double_colon,
    )
