"""The checkpoint's part files: the rows parsed between two checkpoints, as Arrow IPC files.

Written atomically and compactly (:func:`write_part`), read back with :data:`RAW_SCHEMA` restored and
checked (:func:`read_part`); nothing is ever unpickled.
"""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc  # noqa: F401 - pa.ipc

from recsys_assets.core.atomic import atomic_path
from recsys_assets.core.ingest.parse import RAW_SCHEMA

_PART_STRING_COLUMNS = ("error", "raw")
_PART_INT_COLUMNS = ("user_id", "movie_id", "timestamp")
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def part_name(k: int) -> str:
    return f"part-{k:06d}.arrow"


def write_part(table: pa.Table, target: Path) -> None:
    """Write one checkpoint part as an Arrow IPC file, atomically (temporary name, then rename).

    Uncompressed (LZ4 or Parquet encoding would cost more than the parsing)
    and lossless but compact, since every byte written also costs the kernel
    writeback time: string columns that are entirely null (the usual ``error``
    and ``raw``) are stored as Arrow's null type (no buffers), integer columns
    whose values fit are stored as int32, and a ``line`` column that simply
    counts up is stored as its first value in the schema metadata.
    """
    fields, columns = [], []
    meta = {}
    for name, column in zip(table.column_names, table.columns):
        n = len(column)
        if name in _PART_STRING_COLUMNS and column.null_count == n:
            column = pa.nulls(n, pa.null())
        elif name == "line" and n and column.null_count == 0:
            first = column[0].as_py()
            if column[n - 1].as_py() == first + n - 1 and (
                n < 3
                or pc.all(
                    pc.equal(pc.subtract(column, pa.array(np.arange(first, first + n, dtype=np.int64))), 0)
                ).as_py()
            ):
                meta[b"first_line"] = str(first).encode()
                continue
        elif name in _PART_INT_COLUMNS and n:
            lo_hi = pc.min_max(column)
            lo, hi = lo_hi["min"].as_py(), lo_hi["max"].as_py()
            if lo is not None and lo >= _INT32_MIN and hi <= _INT32_MAX:
                column = column.cast(pa.int32())
        fields.append(pa.field(name, column.type))
        columns.append(column)
    stored = pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=meta or None))
    with atomic_path(target, fixed_tmp=True) as tmp:  # only the lock holder writes parts
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, stored.schema) as writer:
            writer.write_table(stored)


def read_part(path: Path) -> pa.Table:
    """Read and check one checkpoint part, restoring :data:`RAW_SCHEMA` (see :func:`write_part`)."""
    with pa.OSFile(str(path), "rb") as source:
        table = pa.ipc.open_file(source).read_all()
    meta = table.schema.metadata or {}
    names = table.column_names
    if "line" not in names and b"first_line" in meta:
        first = int(meta[b"first_line"])
        table = table.add_column(0, "line", pa.array(np.arange(first, first + table.num_rows, dtype=np.int64)))
    if table.column_names != RAW_SCHEMA.names:
        raise ValueError(f"{path.name}: columns {table.column_names}")
    columns = []
    for fld, column in zip(RAW_SCHEMA, table.columns):
        if column.type != fld.type:
            if fld.name in _PART_STRING_COLUMNS and column.type == pa.null():
                column = pa.nulls(len(column), fld.type)
            elif fld.name in _PART_INT_COLUMNS and column.type == pa.int32():
                column = column.cast(pa.int64())
            else:
                raise ValueError(f"{path.name}: column {fld.name} is {column.type}, expected {fld.type}")
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=RAW_SCHEMA)
