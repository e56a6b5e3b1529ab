"""``MovieDataLoader``: a chunked, checkpointed, resumable reader of ratings exports.

The loader is built as ``MovieDataLoader(file_path, checkpoint_file,
chunk_size=250, checkpoint_interval=50000)`` but reads the file in large
blocks and parses them with Arrow, so a small ``chunk_size`` costs nothing:

* ``chunk_size`` is the unit of progress: checkpoints fall on whole chunks.
* ``checkpoint_interval`` is the number of rows between checkpoints (rounded
  up to whole chunks).  Each checkpoint appends one part (an uncompressed
  Arrow IPC file, written to a temporary name and renamed) holding the rows
  parsed since the previous one and atomically replaces a small JSON
  manifest, so a checkpoint costs in proportion to the new rows only.
* Killed at any moment (SIGKILL included), a load resumes from the last
  manifest: the parts it lists are reused and only the rows after it are read
  again, so the result equals an uninterrupted load row for row.
* The manifest is bound to the source file (size, modification time and a
  content fingerprint) and carries its own checksum.  A changed export, a
  corrupt or truncated manifest or a missing part is logged as a warning and
  the load starts over.  Nothing is ever unpickled.

Every data line of the file becomes one row of the result: parsed rows carry
their values; lines that cannot be parsed carry ``error`` (a reason code such
as ``malformed_line`` or ``non_numeric:rating``) and ``raw`` (the line's text),
so that cleaning can quarantine them instead of losing them.

Parsing has two paths with the same result.  The fast path parses everything
read so far that ends on a checkpoint boundary (many checkpoints' worth of
lines) with one multi-threaded ``pyarrow.csv.read_csv`` call; it is taken
only when that call yields exactly one typed, null-free row per line (no
blank, malformed, quoted, non-numeric or empty fields, no stray carriage
returns), so line numbers are consecutive and ``error``/``raw`` are null.
Otherwise each checkpoint segment is parsed on its own, by the fast path if it
is clean and else by the exact line-by-line path (:func:`parse_segment`).
"""

import csv
import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.ipc  # noqa: F401 - pa.ipc

from recsys_assets.core.formats import (
    BOM,
    DAT_REPLACEMENT,
    DAT_SEPARATOR,
    ExportFormat,
    ExportFormatError,
    detect_format,
)

try:  # POSIX advisory locks keep two loads off one checkpoint.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

log = logging.getLogger(__name__)

MANIFEST_VERSION = 2  # 2: parts are Arrow IPC files (1: Parquet)
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
_TYPES = {"user_id": pa.int64(), "movie_id": pa.int64(), "rating": pa.float64(), "timestamp": pa.int64()}
_FINGERPRINT_BYTES = 1 << 20
_NAN_TEXT = {"nan", "+nan", "-nan"}


class ExportError(ValueError):
    """The export cannot be loaded at all (missing, empty, header only, unrecognisable)."""


class CheckpointBusyError(RuntimeError):
    """Another process is loading with the same checkpoint file."""


@dataclass
class LoadStats:
    """What a load did; the Dagster layer turns it into metadata."""

    rows: int = 0
    malformed_rows: int = 0
    blank_lines: int = 0
    resumed_rows: int = 0
    reread_rows: int = 0
    read_rows: int = 0
    checkpoints_written: int = 0
    restart_reason: str | None = None
    source_bytes: int = 0
    source_fingerprint: str = ""
    source_mtime_ns: int = 0
    delimiter: str = ""
    has_header: bool = True

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _State:
    offset: int
    next_line: int
    rows: int = 0
    blank_lines: int = 0
    malformed_rows: int = 0
    parts: int = 0  # part-000001.arrow .. part-<parts>.arrow
    complete: bool = False


def source_identity(path: Path) -> dict:
    """Size, modification time and a fingerprint of the first and last MiB."""
    st = path.stat()
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(st.st_size).encode())
    with open(path, "rb") as f:
        digest.update(f.read(_FINGERPRINT_BYTES))
        if st.st_size > _FINGERPRINT_BYTES:
            f.seek(max(_FINGERPRINT_BYTES, st.st_size - _FINGERPRINT_BYTES))
            digest.update(f.read())
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "fingerprint": digest.hexdigest()}


def _part_name(k: int) -> str:
    return f"part-{k:06d}.arrow"


_PART_STRING_COLUMNS = ("error", "raw")
_PART_INT_COLUMNS = ("user_id", "movie_id", "timestamp")
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def _write_part(table: pa.Table, target: Path) -> None:
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
            if column[n - 1].as_py() == first + n - 1 and (n < 3 or pc.all(pc.equal(
                    pc.subtract(column, pa.array(np.arange(first, first + n, dtype=np.int64))), 0)).as_py()):
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
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, stored.schema) as writer:
            writer.write_table(stored)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_part(path: Path) -> pa.Table:
    """Read and check one checkpoint part, restoring :data:`RAW_SCHEMA` (see :func:`_write_part`)."""
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
    for field, column in zip(RAW_SCHEMA, table.columns):
        if column.type != field.type:
            if field.name in _PART_STRING_COLUMNS and column.type == pa.null():
                column = pa.nulls(len(column), field.type)
            elif field.name in _PART_INT_COLUMNS and column.type == pa.int32():
                column = column.cast(pa.int64())
            else:
                raise ValueError(f"{path.name}: column {field.name} is {column.type}, expected {field.type}")
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=RAW_SCHEMA)


def _atomic_write_small(target: Path, data: bytes) -> None:
    """Replace a small file atomically: write a fixed temporary sibling, then rename it over ``target``.

    Only the holder of the checkpoint lock writes these files, so a fixed
    temporary name is safe (and cheaper than ``mkstemp`` at every checkpoint).
    """
    tmp = target.with_name(f".{target.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        if hasattr(os, "posix_fallocate"):
            # Allocated blocks are not "delayed allocation": ext4 then does not flush the file on
            # the rename over the old manifest (auto_da_alloc), which costs ~1-2 ms per checkpoint.
            try:
                os.posix_fallocate(fd, 0, len(data))
            except OSError:
                pass
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.replace(tmp, target)


def _manifest_checksum(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def table_to_frame(table: pa.Table) -> pd.DataFrame:
    """``table.to_pandas()``, except that integer columns with nulls become nullable ``Int64``
    instead of float64, so values above 2**53 stay exact."""
    frame = table.to_pandas()
    for name, column in zip(table.column_names, table.columns):
        if pa.types.is_integer(column.type) and column.null_count:
            frame[name] = column.to_pandas(types_mapper={column.type: pd.Int64Dtype()}.get).array
    return frame


class MovieDataLoader:
    """Load a ratings export in chunks, checkpointing progress so a killed load resumes.

    Args:
        file_path: the export (CSV, ``.dat`` or tab-separated).
        checkpoint_file: path of the checkpoint manifest; its Arrow IPC parts live
            in ``<checkpoint_file>.parts/``.  ``None`` disables checkpointing.
        chunk_size: rows per chunk, the granularity of progress.
        checkpoint_interval: rows between checkpoints (rounded up to whole chunks).
        delimiter, has_header, column_map: override format detection
            (see :func:`recsys_assets.core.formats.detect_format`).
        on_checkpoint: called as ``on_checkpoint(rows_so_far, bytes_done, bytes_total)``
            after each checkpoint (or each interval when checkpointing is off).
        block_bytes: size of the reads from disk.
    """

    def __init__(
        self,
        file_path: str | os.PathLike,
        checkpoint_file: str | os.PathLike | None = None,
        chunk_size: int = 250,
        checkpoint_interval: int = 50000,
        *,
        delimiter: str | None = None,
        has_header: bool | None = None,
        column_map: dict[str, str] | None = None,
        on_checkpoint: Callable[[int, int, int], None] | None = None,
        block_bytes: int = 32 << 20,
    ):
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        if checkpoint_interval < 1:
            raise ValueError(f"checkpoint_interval must be at least 1, got {checkpoint_interval}")
        self.file_path = Path(file_path)
        self.checkpoint_file = Path(checkpoint_file) if checkpoint_file else None
        self.chunk_size = chunk_size
        self.checkpoint_interval = checkpoint_interval
        self.delimiter = delimiter
        self.has_header = has_header
        self.column_map = column_map
        self.on_checkpoint = on_checkpoint
        self.block_bytes = block_bytes
        self.stats = LoadStats()
        self._lock_handle = None

    # ------------------------------------------------------------------ paths
    @property
    def rows_per_checkpoint(self) -> int:
        chunks = -(-self.checkpoint_interval // self.chunk_size)
        return chunks * self.chunk_size

    @property
    def parts_dir(self) -> Path | None:
        if self.checkpoint_file is None:
            return None
        return self.checkpoint_file.with_name(self.checkpoint_file.name + ".parts")

    def _sidecar(self, suffix: str) -> Path:
        assert self.checkpoint_file is not None
        return self.checkpoint_file.with_name(self.checkpoint_file.name + suffix)

    # ------------------------------------------------------------- public API
    def load(self) -> pd.DataFrame:
        """Load the whole export and return one row per data line (see module docs).

        Integer columns without nulls are ``int64``; an integer column with
        nulls (rows the loader could not parse) is pandas' nullable ``Int64``,
        so ids and timestamps above 2**53 keep their exact values.
        """
        return table_to_frame(self.load_table())

    def load_table(self) -> pa.Table:
        """Like :meth:`load`, as an Arrow table with :data:`RAW_SCHEMA` (one chunk per part or more)."""
        path = self.file_path
        if not path.exists():
            raise ExportError(f"ratings export not found: {path}")
        if not path.is_file():
            raise ExportError(f"ratings export is not a file: {path}")
        size = path.stat().st_size
        if size == 0:
            raise ExportError(f"{path}: the export is empty (0 bytes)")
        fmt, data_offset = self._read_format(path)
        identity = source_identity(path)
        self.stats = LoadStats(
            source_bytes=size,
            source_fingerprint=identity["fingerprint"],
            source_mtime_ns=identity["mtime_ns"],
            delimiter="::" if fmt.double_colon else fmt.delimiter.decode(),
            has_header=fmt.has_header,
        )
        first_line = 2 if fmt.has_header else 1
        self._acquire_lock()
        try:
            state, tables = self._resume(identity, fmt)
            if state is None:
                state = _State(offset=data_offset, next_line=first_line)
                tables = []
            if not state.complete:
                self._stream(path, fmt, identity, state, tables)
        finally:
            self._release_lock()

        self.stats.rows = state.rows
        self.stats.blank_lines = state.blank_lines
        self.stats.malformed_rows = state.malformed_rows
        if state.rows == 0:
            what = "has a header but no data rows" if fmt.has_header else "has no data rows"
            raise ExportError(f"{path}: the export {what}")
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]

    def discard_checkpoint(self) -> None:
        """Remove the manifest and its parts (call after the result has been published)."""
        if self.checkpoint_file is None:
            return
        self.checkpoint_file.unlink(missing_ok=True)
        self.checkpoint_file.with_name(f".{self.checkpoint_file.name}.tmp").unlink(missing_ok=True)
        self._sidecar(".hwm").unlink(missing_ok=True)
        parts = self.parts_dir
        if parts is not None and parts.exists():
            for p in parts.iterdir():
                p.unlink(missing_ok=True)
            parts.rmdir()

    # ---------------------------------------------------------------- format
    def _read_format(self, path: Path) -> tuple[ExportFormat, int]:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
            while b"\n" not in head:
                more = f.read(1 << 16)
                if not more:
                    break
                head += more
        start = len(BOM) if head.startswith(BOM) else 0
        end = head.find(b"\n", start)
        line = head[start:] if end < 0 else head[start:end]
        line = line.rstrip(b"\r")
        if not line.strip():
            raise ExportError(f"{path}: line 1 is empty; expected a header or a rating")
        try:
            fmt = detect_format(
                line,
                delimiter=self.delimiter,
                has_header=self.has_header,
                column_map=self.column_map,
                source=str(path),
            )
        except ExportFormatError as exc:
            raise ExportError(str(exc)) from exc
        if not fmt.has_header:
            return fmt, start
        return fmt, (len(head) if end < 0 else end + 1)

    # ------------------------------------------------------------ checkpoint
    def _acquire_lock(self) -> None:
        if self.checkpoint_file is None or fcntl is None:
            return
        self.checkpoint_file.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self._sidecar(".lock"), "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise CheckpointBusyError(
                f"checkpoint {self.checkpoint_file} is in use by another load; "
                "wait for it to finish or use another checkpoint_file"
            ) from None
        self._lock_handle = handle

    def _release_lock(self) -> None:
        if self._lock_handle is not None:
            fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
            self._lock_handle.close()
            self._lock_handle = None

    def _manifest_body(self, identity: dict, fmt: ExportFormat, state: _State) -> dict:
        key = (id(identity), id(fmt))
        if getattr(self, "_manifest_head", (None,))[0] != key:  # the same for every checkpoint of a load
            self._manifest_head = (key, identity, fmt, str(self.file_path.resolve()))
        return {
            "version": MANIFEST_VERSION,
            "source": {"path": self._manifest_head[3], **identity},
            "format": {
                "delimiter": fmt.delimiter.hex(),
                "has_header": fmt.has_header,
                "field_names": list(fmt.field_names),
                "columns": fmt.columns,
            },
            "offset": state.offset,
            "next_line": state.next_line,
            "rows": state.rows,
            "blank_lines": state.blank_lines,
            "malformed_rows": state.malformed_rows,
            "parts": state.parts,
            "complete": state.complete,
        }

    def _write_manifest(self, identity: dict, fmt: ExportFormat, state: _State) -> None:
        body = self._manifest_body(identity, fmt, state)
        doc = {"body": body, "checksum": _manifest_checksum(body)}
        _atomic_write_small(self.checkpoint_file, json.dumps(doc).encode())

    def _start_over(self, reason: str) -> None:
        log.warning("checkpoint %s not resumed: %s; loading from the start", self.checkpoint_file, reason)
        self.stats.restart_reason = reason
        self.discard_checkpoint()

    def _resume(self, identity: dict, fmt: ExportFormat) -> tuple[_State | None, list[pa.Table]]:
        ckpt = self.checkpoint_file
        if ckpt is None:
            return None, []
        parts_dir = self.parts_dir
        if not ckpt.exists():
            if parts_dir.exists():  # parts of a load killed before its first manifest
                self.discard_checkpoint()
            return None, []
        try:
            doc = json.loads(ckpt.read_bytes())
            body = doc["body"]
            if doc["checksum"] != _manifest_checksum(body):
                raise ValueError("checksum mismatch")
            if body["version"] != MANIFEST_VERSION:
                raise ValueError(f"manifest version {body['version']}")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self._start_over(f"checkpoint is corrupt ({type(exc).__name__}: {exc})")
            return None, []
        src = body["source"]
        if (src["size"], src["mtime_ns"], src["fingerprint"]) != (
            identity["size"],
            identity["mtime_ns"],
            identity["fingerprint"],
        ):
            self._start_over("the export changed since the checkpoint was written")
            return None, []
        expected_format = self._manifest_body(identity, fmt, _State(0, 0))["format"]
        if body["format"] != expected_format:
            self._start_over("the export's format settings changed")
            return None, []
        tables = []
        try:
            for k in range(1, body["parts"] + 1):
                tables.append(_read_part(parts_dir / _part_name(k)))
            found = sum(t.num_rows for t in tables)
            if found != body["rows"]:
                raise ValueError(f"parts hold {found} rows, the manifest says {body['rows']}")
        except (OSError, ValueError, pa.ArrowException) as exc:
            self._start_over(f"checkpoint part unreadable ({exc})")
            return None, []
        state = _State(
            offset=body["offset"],
            next_line=body["next_line"],
            rows=body["rows"],
            blank_lines=body["blank_lines"],
            malformed_rows=body["malformed_rows"],
            parts=body["parts"],
            complete=body["complete"],
        )
        listed = {_part_name(k) for k in range(1, state.parts + 1)}
        for orphan in parts_dir.glob("*") if parts_dir.exists() else []:
            if orphan.name not in listed:  # written by a load killed before its manifest
                orphan.unlink(missing_ok=True)
        self.stats.resumed_rows = state.rows
        hwm = self._sidecar(".hwm")
        if hwm.exists():
            try:
                self.stats.reread_rows = max(0, int(hwm.read_text()) - state.next_line)
            except ValueError:
                pass
        log.info("resuming %s from line %d (%d rows checkpointed)", self.file_path, state.next_line, state.rows)
        return state, tables

    # --------------------------------------------------------------- reading
    def _stream(
        self, path: Path, fmt: ExportFormat, identity: dict, state: _State, tables: list[pa.Table]
    ) -> None:
        """Read from ``state.offset`` to the end, one checkpoint segment (``rows_per_checkpoint`` lines) at a time.

        Reads go into one reusable buffer that holds the unconsumed tail of the
        previous read and the next block; it only grows (doubling, so linear
        overall) when a segment is longer than a block, and each byte is scanned
        for newlines once.  Everything in the buffer that ends on a segment
        boundary is parsed at once (see :meth:`_consume_region`).
        """
        per_ckpt = self.rows_per_checkpoint
        total = identity["size"]
        hwm_fd = None
        if self.checkpoint_file is not None:
            self.parts_dir.mkdir(parents=True, exist_ok=True)
            hwm_fd = os.open(self._sidecar(".hwm"), os.O_WRONLY | os.O_CREAT, 0o666)
        try:
            with open(path, "rb") as f:
                f.seek(state.offset)
                # One reusable buffer: [unconsumed tail of the previous block | next block].  It grows
                # (by doubling, so linearly overall) only when one segment does not fit in it.
                buf = bytearray(self.block_bytes)
                filled = 0
                masks: list[np.ndarray] = []  # newline masks of buf[:filled], one per read (each byte scanned once)
                n_newlines = 0
                eof = False
                while not eof:
                    want = self.block_bytes
                    if len(buf) - filled < want:
                        grown = bytearray(max(2 * len(buf), filled + want))
                        grown[:filled] = memoryview(buf)[:filled]
                        buf = grown
                    got = f.readinto(memoryview(buf)[filled : filled + want])
                    eof = not got
                    if got:
                        new = np.frombuffer(buf, dtype=np.uint8, count=got, offset=filled) == 10
                        masks.append(new)
                        n_newlines += int(np.count_nonzero(new))
                        filled += got
                    if not filled:
                        break
                    if n_newlines < per_ckpt and not eof:
                        continue  # the segment needs more than a block: read on
                    mask = masks[0] if len(masks) == 1 else np.concatenate(masks)
                    n_full = n_newlines // per_ckpt
                    boundaries = np.arange(1, n_full + 1, dtype=np.int64) * per_ckpt - 1
                    ends = (_newline_positions(mask, _piece_counts(mask), boundaries) + 1).tolist()
                    segments = [(0 if k == 0 else ends[k - 1], ends[k], per_ckpt) for k in range(n_full)]
                    cut = ends[-1] if ends else 0
                    n_newlines -= n_full * per_ckpt
                    if eof and cut < filled:  # the last lines, possibly without a final newline
                        segments.append((cut, filled, n_newlines + (0 if buf[filled - 1] == 10 else 1)))
                        cut = filled
                    self._consume_region(buf, segments, fmt, identity, state, tables, total, hwm_fd)
                    masks = [mask[cut:filled]] if cut < filled else []
                    del mask
                    buf[: filled - cut] = memoryview(buf)[cut:filled]  # keep the tail, in place
                    filled -= cut
        finally:
            if hwm_fd is not None:
                os.close(hwm_fd)
        state.complete = True
        if self.checkpoint_file is not None:
            self._write_manifest(identity, fmt, state)

    def _consume_region(
        self,
        buf: bytes,
        segments: list[tuple[int, int, int]],
        fmt: ExportFormat,
        identity: dict,
        state: _State,
        tables: list[pa.Table],
        total: int,
        hwm_fd: int | None,
    ) -> None:
        """Parse consecutive segments ``(start, end, lines)`` of ``buf`` and checkpoint each one."""
        if not segments:
            return
        start, end = segments[0][0], segments[-1][1]
        n_lines = sum(k for _, _, k in segments)
        table = parse_clean(buf, start, end, state.next_line, n_lines, fmt) if len(segments) > 1 else None
        row = 0
        for s, e, k in segments:
            if table is not None:  # the whole region was clean: slice it at the segment boundaries
                part, n_blank, n_malformed = table.slice(row, k), 0, 0
                row += k
            else:
                part = parse_clean(buf, s, e, state.next_line, k, fmt)
                n_blank = n_malformed = 0
                if part is None:
                    part, k, n_blank, n_malformed = parse_segment(bytes(buf[s:e]), state.next_line, fmt)
            self._commit(part, e - s, k, n_blank, n_malformed, fmt, identity, state, tables, total, hwm_fd)

    def _commit(
        self,
        table: pa.Table,
        n_bytes: int,
        n_lines: int,
        n_blank: int,
        n_malformed: int,
        fmt: ExportFormat,
        identity: dict,
        state: _State,
        tables: list[pa.Table],
        total: int,
        hwm_fd: int | None,
    ) -> None:
        """Account for one parsed segment and checkpoint it: high-water mark, part, then manifest."""
        state.offset += n_bytes
        state.next_line += n_lines
        state.rows += table.num_rows
        state.blank_lines += n_blank
        state.malformed_rows += n_malformed
        self.stats.read_rows += table.num_rows
        tables.append(table)
        if self.checkpoint_file is not None:
            # fixed width, written in place: a reader sees a whole number or (after a crash) a
            # torn one, which resume ignores; it only feeds stats.reread_rows
            os.pwrite(hwm_fd, b"%020d" % state.next_line, 0)
            _write_part(table, self.parts_dir / _part_name(state.parts + 1))
            state.parts += 1
            self._write_manifest(identity, fmt, state)
            self.stats.checkpoints_written += 1
        if self.on_checkpoint is not None:
            self.on_checkpoint(state.rows, state.offset, total)


# ---------------------------------------------------------------------- parsing
_PIECE = 1 << 16


def _piece_counts(mask: np.ndarray) -> np.ndarray:
    """Cumulative count of True in ``mask`` at the start of each ``_PIECE``-byte piece (and at the end)."""
    counts = [np.count_nonzero(mask[i : i + _PIECE]) for i in range(0, len(mask), _PIECE)]
    cum = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=cum[1:])
    return cum


def _newline_positions(mask: np.ndarray, cum: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """Byte positions of the ``k``-th newlines (0-based, ``ks`` ascending).

    Only the pieces that hold a wanted newline are searched, so finding one
    checkpoint boundary every 50,000 lines costs far less than listing every
    newline.
    """
    if len(ks) == 0:
        return np.zeros(0, dtype=np.int64)
    if len(ks) * 4 > len(cum):  # dense: list them all
        return np.flatnonzero(mask)[ks]
    pieces = np.searchsorted(cum, ks, side="right") - 1
    out = np.empty(len(ks), dtype=np.int64)
    for j, (k, p) in enumerate(zip(ks.tolist(), pieces.tolist())):
        local = np.flatnonzero(mask[p * _PIECE : (p + 1) * _PIECE])
        out[j] = p * _PIECE + int(local[k - int(cum[p])])
    return out

def _line_text(data: bytes, start: int, end: int, fmt: ExportFormat) -> str:
    raw = data[start:end]
    if fmt.double_colon:
        raw = raw.replace(DAT_REPLACEMENT, DAT_SEPARATOR)
    return raw.decode("utf-8", errors="replace")


def _read_arrow(data, fmt: ExportFormat, typed: bool, use_threads: bool = True) -> pa.Table:
    names = [f"f{i}" for i in range(fmt.n_fields)]
    wanted = {col: f"f{i}" for col, i in fmt.columns.items()}
    types = {name: (_TYPES[col] if typed else pa.string()) for col, name in wanted.items()}
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


def _coerce_column(values: pd.Series, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse strings leniently; return (numbers as float64, missing mask, non-numeric mask)."""
    text = values.astype("string").str.strip()
    missing = (text.isna() | (text == "")).to_numpy(dtype=bool)
    numbers = pd.to_numeric(text.where(~pd.Series(missing, index=text.index)), errors="coerce")
    numbers = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.isnan(numbers) & ~missing
    if column == "rating":
        is_nan_text = text.str.lower().isin(_NAN_TEXT).fillna(False).to_numpy(dtype=bool)
        bad &= ~is_nan_text
    else:
        with np.errstate(invalid="ignore"):
            bad |= ~missing & ~np.isnan(numbers) & ((numbers % 1) != 0)
    return numbers, missing, bad


def _from_strings(columns: dict[str, pd.Series], fmt: ExportFormat) -> tuple[dict, np.ndarray]:
    """Typed arrays and a per-row error code (object array, None where fine)."""
    n = len(next(iter(columns.values())))
    errors = np.full(n, None, dtype=object)
    out = {}
    for col in ("user_id", "movie_id", "rating", "timestamp"):
        if col not in columns:
            out[col] = pa.nulls(n, _TYPES[col])
            continue
        numbers, missing, bad = _coerce_column(columns[col], col)
        errors[(errors == None) & missing] = f"missing_field:{col}"  # noqa: E711
        errors[(errors == None) & bad] = f"non_numeric:{col}"  # noqa: E711
        usable = ~(missing | bad)
        if col == "rating":
            out[col] = pa.array(numbers, pa.float64(), mask=~usable)
        else:
            safe = np.where(usable & (np.abs(numbers) < 9.2e18), numbers, 0).astype(np.int64)
            errors[(errors == None) & usable & (np.abs(numbers) >= 9.2e18)] = f"non_numeric:{col}"  # noqa: E711
            out[col] = pa.array(safe, pa.int64(), mask=~usable)
    return out, errors


def parse_clean(buf, start: int, end: int, first_line: int, n_lines: int, fmt: ExportFormat) -> pa.Table | None:
    """Fast path: parse the ``n_lines`` whole lines in ``buf[start:end]`` in one multi-threaded Arrow call.

    Returns the :data:`RAW_SCHEMA` table, or ``None`` when any line needs the
    exact path (:func:`parse_segment`): a quote, a carriage return that does not
    end a line, a blank or malformed line (the row count differs from the line
    count, or Arrow rejects the row), a field that does not convert to its type,
    or an empty field.  When it returns a table, :func:`parse_segment` would
    return the same rows.
    """
    if n_lines == 0 or end <= start:
        return None
    if buf.find(b'"', start, end) >= 0:
        return None
    if buf.find(b"\r", start, end) >= 0 and buf.count(b"\r", start, end) != buf.count(b"\r\n", start, end):
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
    columns = {name: table.column(name) for name in table.column_names}
    return pa.Table.from_arrays(
        [
            pa.array(np.arange(first_line, first_line + n, dtype=np.int64)),
            columns.get("user_id", pa.nulls(n, pa.int64())),
            columns.get("movie_id", pa.nulls(n, pa.int64())),
            columns.get("rating", pa.nulls(n, pa.float64())),
            columns.get("timestamp", pa.nulls(n, pa.int64())),
            pa.nulls(n, pa.string()),
            pa.nulls(n, pa.string()),
        ],
        schema=RAW_SCHEMA,
    )


def parse_segment(segment: bytes, first_line: int, fmt: ExportFormat) -> tuple[pa.Table, int, int, int]:
    """Parse whole lines of an export into a :data:`RAW_SCHEMA` table.

    Returns ``(table, lines consumed, blank lines, malformed lines)``.  Blank
    lines are skipped (they are not rows); every other line becomes a row.
    """
    data = segment.replace(DAT_SEPARATOR, DAT_REPLACEMENT) if fmt.double_colon else bytes(segment)
    if not data.endswith(b"\n"):
        data += b"\n"
    arr = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(arr == 10)
    n_lines = len(newlines)
    starts = np.empty(n_lines, dtype=np.int64)
    starts[0] = 0
    starts[1:] = newlines[:-1] + 1
    ends = newlines.copy()
    ends -= (ends > starts) & (arr[np.maximum(ends - 1, 0)] == 13)
    line_numbers = first_line + np.arange(n_lines, dtype=np.int64)
    blank = ends == starts

    if b'"' in data:
        return _parse_quoted(data, starts, ends, line_numbers, blank, fmt)

    delims = np.flatnonzero(arr == fmt.delimiter[0])
    n_fields = np.searchsorted(delims, ends) - np.searchsorted(delims, starts) + 1
    good = (n_fields == fmt.n_fields) & ~blank
    malformed = ~good & ~blank
    if good.all():
        good_data = data
    else:
        lengths = newlines - starts + 1
        good_data = arr[np.repeat(good, lengths)].tobytes()
    good_idx = np.flatnonzero(good)

    if len(good_idx):
        try:
            typed = _read_arrow(good_data, fmt, typed=True)
            columns = {name: typed.column(name).combine_chunks() for name in typed.column_names}
            for col in ("user_id", "movie_id", "rating", "timestamp"):
                columns.setdefault(col, pa.nulls(len(good_idx), _TYPES[col]))
            errors = np.full(len(good_idx), None, dtype=object)
            for col in fmt.columns:  # empty fields parse as nulls
                nulls = columns[col].is_null().to_numpy(zero_copy_only=False)
                if nulls.any():
                    errors[(errors == None) & nulls] = f"missing_field:{col}"  # noqa: E711
        except pa.ArrowInvalid:  # text in a numeric column: parse this segment leniently
            strings = _read_arrow(good_data, fmt, typed=False)
            columns, errors = _from_strings(
                {name: strings.column(name).to_pandas() for name in strings.column_names}, fmt
            )
    else:
        columns = {col: pa.nulls(0, t) for col, t in _TYPES.items()}
        errors = np.full(0, None, dtype=object)

    table = _assemble(
        data, starts, ends, line_numbers, good_idx, columns, errors, np.flatnonzero(malformed), fmt
    )
    return table, n_lines, int(blank.sum()), int(malformed.sum())


def _parse_quoted(data, starts, ends, line_numbers, blank, fmt):
    """Slow path for segments with quote characters: the csv module, line by line."""
    names = list(fmt.columns)
    positions = [fmt.columns[c] for c in names]
    values: dict[str, list] = {c: [] for c in names}
    good_idx, bad_idx = [], []
    delimiter = chr(fmt.delimiter[0])
    for i in np.flatnonzero(~blank):
        text = data[starts[i] : ends[i]].decode("utf-8", errors="replace")
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
        columns, errors = _from_strings({c: pd.Series(v, dtype="string") for c, v in values.items()}, fmt)
    else:
        columns = {col: pa.nulls(0, t) for col, t in _TYPES.items()}
        errors = np.full(0, None, dtype=object)
    bad_idx = np.asarray(bad_idx, dtype=np.int64)
    table = _assemble(data, starts, ends, line_numbers, good_idx, columns, errors, bad_idx, fmt)
    return table, len(starts), int(blank.sum()), len(bad_idx)


def _assemble(data, starts, ends, line_numbers, good_idx, columns, errors, bad_idx, fmt) -> pa.Table:
    raw = np.full(len(good_idx), None, dtype=object)
    for j in np.flatnonzero(errors != None):  # noqa: E711 - rare: rows with a bad field
        i = good_idx[j]
        raw[j] = _line_text(data, starts[i], ends[i], fmt)
    table = pa.table(
        {
            "line": pa.array(line_numbers[good_idx], pa.int64()),
            "user_id": columns["user_id"],
            "movie_id": columns["movie_id"],
            "rating": columns["rating"],
            "timestamp": columns["timestamp"],
            "error": pa.array(errors, pa.string()),
            "raw": pa.array(raw, pa.string()),
        },
        schema=RAW_SCHEMA,
    )
    if len(bad_idx) == 0:
        return table
    n_fields = fmt.n_fields
    bad = pa.table(
        {
            "line": pa.array(line_numbers[bad_idx], pa.int64()),
            "user_id": pa.nulls(len(bad_idx), pa.int64()),
            "movie_id": pa.nulls(len(bad_idx), pa.int64()),
            "rating": pa.nulls(len(bad_idx), pa.float64()),
            "timestamp": pa.nulls(len(bad_idx), pa.int64()),
            "error": pa.array([f"malformed_line:expected {n_fields} fields"] * len(bad_idx), pa.string()),
            "raw": pa.array([_line_text(data, starts[i], ends[i], fmt) for i in bad_idx], pa.string()),
        },
        schema=RAW_SCHEMA,
    )
    merged = pa.concat_tables([table, bad])
    return merged.take(pc.sort_indices(merged, [("line", "ascending")]))


def read_lines(path: str | os.PathLike, line_numbers, block_bytes: int = 32 << 20) -> dict[int, str]:
    """The text of the given 1-based line numbers of a file (line endings and BOM removed).

    One sequential scan; used to show the exact raw text of quarantined rows
    that parsed (and so were not kept as text by the loader).
    """
    wanted = np.unique(np.asarray(list(line_numbers), dtype=np.int64))
    out: dict[int, str] = {}
    if not len(wanted):
        return out
    line = 1  # number of the line that starts at the beginning of buf
    buf = b""
    with open(path, "rb") as f:
        while True:
            block = f.read(block_bytes)
            eof = not block
            buf = buf + block if buf else block
            newlines = np.flatnonzero(np.frombuffer(buf, dtype=np.uint8) == 10)
            complete = len(newlines) if not eof else len(newlines) + (1 if buf and not buf.endswith(b"\n") else 0)
            lo, hi = np.searchsorted(wanted, [line, line + complete])
            for n in wanted[lo:hi]:
                k = int(n - line)
                start = 0 if k == 0 else int(newlines[k - 1]) + 1
                end = int(newlines[k]) if k < len(newlines) else len(buf)
                text = buf[start:end].rstrip(b"\r")
                if n == 1 and text.startswith(BOM):
                    text = text[len(BOM):]
                out[int(n)] = text.decode("utf-8", errors="replace")
            if eof or hi == len(wanted):
                break
            cut = int(newlines[-1]) + 1 if len(newlines) else 0
            line += len(newlines)
            buf = buf[cut:]
    return out
