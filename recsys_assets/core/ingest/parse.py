"""Parsing whole lines of an export into :data:`RAW_SCHEMA` tables.

Two paths with the same result:

* :func:`parse_clean`, the fast path: one multi-threaded
  ``pyarrow.csv.read_csv`` call, taken only when it yields exactly one typed,
  null-free row per line (no blank, malformed, quoted, non-numeric or empty
  fields, no stray carriage returns), so line numbers are consecutive and
  ``error``/``raw`` are null;
* :func:`parse_segment`, the exact path: every line becomes a row, with an
  ``error`` code and its ``raw`` text where it cannot be parsed.  Text fields
  are read with the project's one number rule (:mod:`recsys_assets.core.numbers`).
"""

import csv
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from recsys_assets.core import numbers
from recsys_assets.core.formats import DAT_REPLACEMENT, DAT_SEPARATOR, ExportFormat

RAW_SCHEMA = pa.schema(
    [
        ("line", pa.int64()),
        ("user_id", pa.int64()),
        ("movie_id", pa.int64()),
        ("rating", pa.float64()),
        ("timestamp", pa.int64()),
        ("error", pa.string()),
        ("raw", pa.string()),
    ]
)
VALUE_TYPES = {"user_id": pa.int64(), "movie_id": pa.int64(), "rating": pa.float64(), "timestamp": pa.int64()}


@dataclass
class Parsed:
    """One parsed segment: its rows, and how many lines it consumed, were blank or malformed."""

    table: pa.Table
    lines: int
    blank: int = 0
    malformed: int = 0


RAW_TEXT_LIMIT = 1024  # bytes of a too-long line kept as its raw text


@dataclass
class _Lines:
    """Where the lines of a segment lie in its (normalised) bytes."""

    data: bytes
    starts: np.ndarray
    ends: np.ndarray  # exclusive, line ending removed
    numbers: np.ndarray  # 1-based line numbers
    blank: np.ndarray  # bool
    rejected: np.ndarray | None = None  # object: an error code for lines rejected before splitting fields


def _reject_lines(lines: _Lines, fmt: ExportFormat, max_line_bytes: int | None) -> None:
    """Mark lines no field parser should see: too long, a carriage return inside, not UTF-8.

    Each becomes a quarantined row (``malformed_line`` or ``invalid_encoding``)
    and the load goes on.
    """
    data, starts, ends = lines.data, lines.starts, lines.ends
    codes = np.full(len(starts), None, dtype=object)
    if max_line_bytes is not None:
        codes[(ends - starts) > max_line_bytes] = f"malformed_line:longer than {max_line_bytes} bytes"
    if b"\r" in data:  # a CR that does not end its line: Arrow would split the line there
        cr = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 13)
        at = np.searchsorted(starts, cr, side="right") - 1
        lone = np.unique(at[cr < ends[at]])
        lone = lone[codes[lone] == None]  # noqa: E711
        codes[lone] = "malformed_line:carriage return inside the line"
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            for i in np.flatnonzero(codes == None).tolist():  # noqa: E711
                line = data[starts[i] : ends[i]]
                if not line.isascii():
                    try:
                        line.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        codes[i] = (
                            f"invalid_encoding:byte 0x{line[exc.start]:02x} at column {exc.start + 1} is not UTF-8"
                        )
    if (codes != None).any():  # noqa: E711
        lines.rejected = codes


def table_to_frame(table: pa.Table) -> pd.DataFrame:
    """``table.to_pandas()``, except that integer columns with nulls become nullable ``Int64``
    instead of float64, so values above 2**53 stay exact."""
    frame = table.to_pandas()
    for name, column in zip(table.column_names, table.columns):
        if pa.types.is_integer(column.type) and column.null_count:
            frame[name] = column.to_pandas(types_mapper={column.type: pd.Int64Dtype()}.get).array
    return frame


def _line_text(data: bytes, start: int, end: int, fmt: ExportFormat) -> str:
    if end - start > RAW_TEXT_LIMIT:  # a too-long line: its start only, never the whole line
        return _line_text(data, start, start + RAW_TEXT_LIMIT, fmt) + f"... [{end - start} bytes]"
    raw = data[start:end]
    if fmt.double_colon:
        raw = raw.replace(DAT_REPLACEMENT, DAT_SEPARATOR)
    return raw.decode("utf-8", errors="replace")


def _read_arrow(data, fmt: ExportFormat, *, typed: bool, use_threads: bool = True) -> pa.Table:
    names = [f"f{i}" for i in range(fmt.n_fields)]
    wanted = {col: f"f{i}" for col, i in fmt.columns.items()}
    types = {name: (VALUE_TYPES[col] if typed else pa.string()) for col, name in wanted.items()}
    source = pa.BufferReader(data if isinstance(data, pa.Buffer) else pa.py_buffer(data))
    table = pacsv.read_csv(
        source,
        read_options=pacsv.ReadOptions(column_names=names, autogenerate_column_names=False, use_threads=use_threads),
        parse_options=pacsv.ParseOptions(delimiter=chr(fmt.delimiter[0]), quote_char=False),
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            include_columns=list(wanted.values()),
            null_values=[""],
            strings_can_be_null=True,
        ),
    )
    return table.rename_columns([col for col in wanted])


def _from_strings(columns: dict[str, pd.Series], n: int) -> tuple[dict, np.ndarray]:
    """Typed arrays and a per-row error code (object array, None where fine), by the shared number rule."""
    errors = np.full(n, None, dtype=object)
    out = {}
    for col in VALUE_TYPES:
        if col not in columns:
            out[col] = pa.nulls(n, VALUE_TYPES[col])
            continue
        parsed = numbers.parse_text(columns[col])
        errors[(errors == None) & parsed.absent] = f"missing_field:{col}"  # noqa: E711
        errors[(errors == None) & parsed.unparsed] = f"non_numeric:{col}"  # noqa: E711
        if col == "rating":
            usable = ~(parsed.absent | parsed.unparsed)
            out[col] = pa.array(parsed.floats, pa.float64(), mask=~usable)
            continue
        out_of_range = f"invalid_id:{col} does not fit int64" if col != "timestamp" else f"non_numeric:{col}"
        errors[(errors == None) & parsed.out_of_range] = out_of_range  # noqa: E711
        errors[(errors == None) & ~parsed.absent & ~parsed.integral] = f"non_numeric:{col}"  # noqa: E711
        out[col] = pa.array(parsed.ints, pa.int64(), mask=~parsed.integral)
    return out, errors


def _table(line_numbers: np.ndarray, columns: dict, errors, raw) -> pa.Table:
    return pa.Table.from_arrays(
        [
            pa.array(line_numbers, pa.int64()),
            columns["user_id"],
            columns["movie_id"],
            columns["rating"],
            columns["timestamp"],
            pa.array(errors, pa.string()),
            pa.array(raw, pa.string()),
        ],
        schema=RAW_SCHEMA,
    )


def parse_clean(buf, start: int, end: int, *, first_line: int, n_lines: int, fmt: ExportFormat) -> pa.Table | None:
    """Fast path: parse the ``n_lines`` whole lines in ``buf[start:end]`` in one multi-threaded Arrow call.

    Returns the :data:`RAW_SCHEMA` table, or ``None`` when any line needs the
    exact path (:func:`parse_segment`): a quote, a carriage return that does not
    end a line, a blank or malformed line (the row count differs from the line
    count, or Arrow rejects the row), a field that does not convert to its type,
    an empty field, or bytes that are not UTF-8.  When it returns a table,
    :func:`parse_segment` would return the same rows.  (Lines longer than the
    loader's ``max_line_bytes`` are kept off this path by the caller.)
    """
    if n_lines == 0 or end <= start:
        return None
    if buf.find(b'"', start, end) >= 0:
        return None
    if buf.find(b"\r", start, end) >= 0 and buf.count(b"\r", start, end) != buf.count(b"\r\n", start, end):
        return None
    if np.frombuffer(buf, dtype=np.uint8, count=end - start, offset=start).max() >= 0x80:
        try:  # a line that is not UTF-8 is quarantined by the exact path
            str(memoryview(buf)[start:end], "utf-8")
        except UnicodeDecodeError:
            return None
    if fmt.double_colon:
        data = pa.py_buffer(bytes(buf[start:end]).replace(DAT_SEPARATOR, DAT_REPLACEMENT))
    else:
        data = pa.py_buffer(buf)
        if start or end != len(buf):
            data = data.slice(start, end - start)
    try:
        table = _read_arrow(data, fmt, typed=True, use_threads=True)
    except pa.ArrowInvalid:
        return None
    if table.num_rows != n_lines or any(c.null_count for c in table.columns):
        return None
    n = n_lines
    columns = {
        col: table.column(col) if col in table.column_names else pa.nulls(n, t) for col, t in VALUE_TYPES.items()
    }
    nulls = pa.nulls(n, pa.string())
    return _table(np.arange(first_line, first_line + n, dtype=np.int64), columns, nulls, nulls)


def _split_lines(segment: bytes, first_line: int, fmt: ExportFormat) -> _Lines:
    data = segment.replace(DAT_SEPARATOR, DAT_REPLACEMENT) if fmt.double_colon else bytes(segment)
    if not data.endswith(b"\n"):
        data += b"\n"
    arr = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(arr == 10)
    starts = np.empty(len(newlines), dtype=np.int64)
    starts[0] = 0
    starts[1:] = newlines[:-1] + 1
    ends = newlines.copy()
    ends -= (ends > starts) & (arr[np.maximum(ends - 1, 0)] == 13)
    line_numbers = first_line + np.arange(len(newlines), dtype=np.int64)
    return _Lines(data, starts, ends, line_numbers, ends == starts)


def parse_segment(segment: bytes, first_line: int, fmt: ExportFormat, *, max_line_bytes: int | None = None) -> Parsed:
    """Exact path: parse whole lines of an export into a :data:`RAW_SCHEMA` table.

    Blank lines are skipped (they are not rows); every other line becomes a
    row.  Lines longer than ``max_line_bytes``, with a carriage return inside
    or not valid UTF-8 become rows with an error code (see :func:`_reject_lines`).
    """
    lines = _split_lines(segment, first_line, fmt)
    _reject_lines(lines, fmt, max_line_bytes)
    data, starts, ends, blank = lines.data, lines.starts, lines.ends, lines.blank
    if b'"' in data:
        return _parse_quoted(lines, fmt)

    arr = np.frombuffer(data, dtype=np.uint8)
    delims = np.flatnonzero(arr == fmt.delimiter[0])
    n_fields = np.searchsorted(delims, ends) - np.searchsorted(delims, starts) + 1
    rejected = lines.rejected != None if lines.rejected is not None else np.zeros(len(starts), dtype=bool)  # noqa: E711
    good = (n_fields == fmt.n_fields) & ~blank & ~rejected
    malformed = ~good & ~blank
    if good.all():
        good_data = data
    else:
        newline_after = np.append(starts[1:], len(data))
        good_data = arr[np.repeat(good, newline_after - starts)].tobytes()
    good_idx = np.flatnonzero(good)

    if len(good_idx):
        try:
            typed = _read_arrow(good_data, fmt, typed=True)
            columns = {name: typed.column(name).combine_chunks() for name in typed.column_names}
            for col in VALUE_TYPES:
                columns.setdefault(col, pa.nulls(len(good_idx), VALUE_TYPES[col]))
            errors = np.full(len(good_idx), None, dtype=object)
            for col in fmt.columns:  # empty fields parse as nulls
                nulls = columns[col].is_null().to_numpy(zero_copy_only=False)
                if nulls.any():
                    errors[(errors == None) & nulls] = f"missing_field:{col}"  # noqa: E711
        except pa.ArrowInvalid:  # text in a numeric column: parse this segment leniently
            try:
                strings = _read_arrow(good_data, fmt, typed=False)
            except pa.ArrowInvalid:  # not expected after _reject_lines; line by line is always possible
                return _parse_quoted(lines, fmt)
            columns, errors = _from_strings(
                {name: strings.column(name).to_pandas() for name in strings.column_names}, len(good_idx)
            )
    else:
        columns = {col: pa.nulls(0, t) for col, t in VALUE_TYPES.items()}
        errors = np.full(0, None, dtype=object)

    table = _assemble(lines, good_idx, columns, errors, np.flatnonzero(malformed), fmt)
    return Parsed(table, len(starts), int(blank.sum()), int(malformed.sum()))


def _parse_quoted(lines: _Lines, fmt: ExportFormat) -> Parsed:
    """Slow path for segments with quote characters: the csv module, line by line."""
    names = list(fmt.columns)
    positions = [fmt.columns[c] for c in names]
    values: dict[str, list] = {c: [] for c in names}
    good_idx, bad_idx = [], []
    delimiter = chr(fmt.delimiter[0])
    rejected = lines.rejected
    for i in np.flatnonzero(~lines.blank):
        if rejected is not None and rejected[i] is not None:
            bad_idx.append(i)
            continue
        text = lines.data[lines.starts[i] : lines.ends[i]].decode("utf-8", errors="replace")
        try:
            fields = next(csv.reader([text], delimiter=delimiter, strict=True))
        except (csv.Error, StopIteration):
            fields = None
        if fields is None or len(fields) != fmt.n_fields:
            bad_idx.append(i)
            continue
        good_idx.append(i)
        for c, p in zip(names, positions):
            values[c].append(fields[p])
    good_idx = np.asarray(good_idx, dtype=np.int64)
    if len(good_idx):
        columns, errors = _from_strings({c: pd.Series(v, dtype="string") for c, v in values.items()}, len(good_idx))
    else:
        columns = {col: pa.nulls(0, t) for col, t in VALUE_TYPES.items()}
        errors = np.full(0, None, dtype=object)
    bad_idx = np.asarray(bad_idx, dtype=np.int64)
    table = _assemble(lines, good_idx, columns, errors, bad_idx, fmt)
    return Parsed(table, len(lines.starts), int(lines.blank.sum()), len(bad_idx))


def _assemble(
    lines: _Lines, good_idx: np.ndarray, columns: dict, errors: np.ndarray, bad_idx: np.ndarray, fmt: ExportFormat
) -> pa.Table:
    """The parsed rows (``good_idx``) and the malformed lines (``bad_idx``) as one table in line order."""
    raw = np.full(len(good_idx), None, dtype=object)
    for j in np.flatnonzero(errors != None):  # noqa: E711 - rare: rows with a bad field
        i = good_idx[j]
        raw[j] = _line_text(lines.data, lines.starts[i], lines.ends[i], fmt)
    table = _table(lines.numbers[good_idx], columns, errors, raw)
    if len(bad_idx) == 0:
        return table
    n_bad = len(bad_idx)
    codes = [f"malformed_line:expected {fmt.n_fields} fields"] * n_bad
    if lines.rejected is not None:
        codes = [lines.rejected[i] or code for i, code in zip(bad_idx.tolist(), codes)]
    bad = _table(
        lines.numbers[bad_idx],
        {col: pa.nulls(n_bad, t) for col, t in VALUE_TYPES.items()},
        codes,
        [_line_text(lines.data, lines.starts[i], lines.ends[i], fmt) for i in bad_idx],
    )
    merged = pa.concat_tables([table, bad])
    return merged.take(pc.sort_indices(merged, [("line", "ascending")]))
