"""``MovieDataLoader``: a chunked, checkpointed, resumable reader of ratings exports.

The loader is built as ``MovieDataLoader(file_path, checkpoint_file,
chunk_size=250, checkpoint_interval=50000)`` but reads the file in large
blocks and parses them with Arrow, so a small ``chunk_size`` costs nothing:

* ``chunk_size`` is the unit of progress: checkpoints fall on whole chunks.
* ``checkpoint_interval`` is the number of rows between checkpoints (rounded
  up to whole chunks).  Each checkpoint appends one part holding the rows
  parsed since the previous one and atomically replaces a small JSON
  manifest, so a checkpoint costs in proportion to the new rows only
  (:mod:`recsys_assets.core.ingest.checkpoint`).
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

The work is split in three rooms: :mod:`~recsys_assets.core.ingest.framing`
cuts the file into whole lines, :mod:`~recsys_assets.core.ingest.parse` turns
lines into rows (a fast Arrow path over everything read so far that ends on a
checkpoint boundary, else per segment, else the exact line-by-line path), and
:mod:`~recsys_assets.core.ingest.checkpoint` owns what is on disk.  This
module composes them around one per-load object, :class:`_Load`.
"""

import gzip
import logging
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from recsys_assets.core.formats import ExportError, ExportFormat, ExportFormatError, detect_format
from recsys_assets.core.ingest.checkpoint import CheckpointStore, Progress
from recsys_assets.core.ingest.framing import (
    GzipLimits,
    Region,
    compressed_position,
    is_gzip,
    iter_regions,
    open_export,
    read_first_line,
)
from recsys_assets.core.ingest.identity import source_identity
from recsys_assets.core.ingest.parse import Parsed, parse_clean, parse_segment, table_to_frame
from recsys_assets.core.locks import BusyError

log = logging.getLogger(__name__)

DEFAULT_MAX_LINE_BYTES = 1 << 20


@dataclass(kw_only=True)
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


@dataclass(frozen=True)
class ExportLayout:
    """The export's format and where its data lines start."""

    fmt: ExportFormat
    data_offset: int  # byte offset of the first data line
    first_line: int  # its 1-based line number


@dataclass(kw_only=True)
class _Load:
    """One load in progress: the source, where it has got to, the rows so far and the checkpoint."""

    path: Path
    layout: ExportLayout
    progress: Progress
    tables: list[pa.Table]
    stats: LoadStats
    store: CheckpointStore | None
    on_checkpoint: Callable[[int, int, int], None] | None
    max_line_bytes: int | None
    gzip_limits: GzipLimits | None = None
    reader: object = None  # the open export while run() reads it

    def run(self, *, lines_per_segment: int, block_bytes: int) -> None:
        """Read from ``progress.offset`` to the end of the source, checkpointing every segment."""
        if self.store is not None:
            self.store.open()
        try:
            with open_export(self.path, self.gzip_limits) as f:
                self.reader = f
                f.seek(self.progress.offset)  # a gzip export decompresses up to it again
                regions = iter_regions(
                    f, lines_per_segment=lines_per_segment, block_bytes=block_bytes, max_line_bytes=self.max_line_bytes
                )
                for region in regions:
                    self.consume(region)
        finally:
            self.reader = None
            if self.store is not None:
                self.store.close()
        if self.store is not None:
            self.store.finish(self.progress)
        else:
            self.progress.complete = True

    def consume(self, region: Region) -> None:
        """Parse consecutive segments of the buffer and commit each one.

        Several segments are first tried as one fast-path call (many
        checkpoints' worth of lines at once); when that fails each segment
        takes the fast path on its own, or else the exact path.  A region that
        may hold a line over ``max_line_bytes`` takes the exact path, which
        quarantines such lines.
        """
        buf, segments, fmt = region.buf, region.segments, self.layout.fmt
        fast = not region.may_have_long_lines
        whole = None
        if fast and len(segments) > 1:
            whole = parse_clean(
                buf,
                segments[0].start,
                segments[-1].end,
                first_line=self.progress.next_line,
                n_lines=sum(seg.lines for seg in segments),
                fmt=fmt,
            )
        row = 0
        for seg in segments:
            if whole is not None:  # the whole region was clean: slice it at the segment boundaries
                parsed = Parsed(whole.slice(row, seg.lines), seg.lines)
                row += seg.lines
            else:
                table = None
                if fast:
                    table = parse_clean(
                        buf, seg.start, seg.end, first_line=self.progress.next_line, n_lines=seg.lines, fmt=fmt
                    )
                if table is not None:
                    parsed = Parsed(table, seg.lines)
                else:
                    parsed = parse_segment(
                        bytes(buf[seg.start : seg.end]),
                        self.progress.next_line,
                        fmt,
                        max_line_bytes=self.max_line_bytes,
                    )
            self.commit(parsed, seg.file_bytes)

    def commit(self, parsed: Parsed, n_bytes: int) -> None:
        """Account for one parsed segment of ``n_bytes`` bytes and checkpoint it."""
        p = self.progress
        p.offset += n_bytes
        p.next_line += parsed.lines
        p.rows += parsed.table.num_rows
        p.blank_lines += parsed.blank
        p.malformed_rows += parsed.malformed
        self.stats.read_rows += parsed.table.num_rows
        self.tables.append(parsed.table)
        if self.gzip_limits is not None and isinstance(self.reader, gzip.GzipFile):
            self.gzip_limits.check_rows(self.path, p.rows)  # before the rows over the cap are checkpointed
        if self.store is not None:
            self.store.commit(parsed.table, p)
            self.stats.checkpoints_written += 1
        if self.on_checkpoint is not None:
            done = compressed_position(self.reader) if self.reader is not None else None
            self.on_checkpoint(p.rows, p.offset if done is None else done, self.stats.source_bytes)


class MovieDataLoader:
    """Load a ratings export in chunks, checkpointing progress so a killed load resumes.

    Args:
        file_path: the export (CSV, ``.dat`` or tab-separated), plain or gzip-compressed.
        checkpoint_file: path of the checkpoint manifest; its Arrow IPC parts live
            in ``<checkpoint_file>.parts/``.  ``None`` disables checkpointing.
        chunk_size: rows per chunk, the granularity of progress.
        checkpoint_interval: rows between checkpoints (rounded up to whole chunks).
        delimiter, has_header, column_map: override format detection
            (see :func:`recsys_assets.core.formats.detect_format`).
        on_checkpoint: called as ``on_checkpoint(rows_so_far, bytes_done, bytes_total)``
            after each checkpoint (or each interval when checkpointing is off).
        block_bytes: size of the reads from disk.
        max_line_bytes: the longest line accepted (default 1 MiB; ``None``: no limit).
            A longer data line is quarantined (``malformed_line``) with its line
            number and only its start kept as ``raw``; it is never held whole in
            memory.  A longer first line (the header) fails the load.
        gzip_limits: caps on a gzip-compressed export's decompressed bytes and rows
            (:class:`~recsys_assets.core.ingest.framing.GzipLimits`; ``None``: no caps).
            Going over one raises ``ExportTooLargeError`` (an ``ExportError``).
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
        max_line_bytes: int | None = DEFAULT_MAX_LINE_BYTES,
        gzip_limits: GzipLimits | None = None,
    ):
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        if checkpoint_interval < 1:
            raise ValueError(f"checkpoint_interval must be at least 1, got {checkpoint_interval}")
        if max_line_bytes is not None and max_line_bytes < 1:
            raise ValueError(f"max_line_bytes must be at least 1 (or None), got {max_line_bytes}")
        self.file_path = Path(file_path)
        self.checkpoint_file = Path(checkpoint_file) if checkpoint_file else None
        self.chunk_size = chunk_size
        self.checkpoint_interval = checkpoint_interval
        self.delimiter = delimiter
        self.has_header = has_header
        self.column_map = column_map
        self.on_checkpoint = on_checkpoint
        self.block_bytes = block_bytes
        self.max_line_bytes = max_line_bytes
        self.gzip_limits = gzip_limits
        self.stats = LoadStats()
        self.checkpoint = CheckpointStore(self.checkpoint_file) if self.checkpoint_file is not None else None

    @property
    def rows_per_checkpoint(self) -> int:
        chunks = -(-self.checkpoint_interval // self.chunk_size)
        return chunks * self.chunk_size

    @property
    def parts_dir(self) -> Path | None:
        return self.checkpoint.parts_dir if self.checkpoint is not None else None

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
        try:
            return self._load_table(path, size)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            if not is_gzip(path):
                raise
            raise ExportError(f"{path}: the gzip-compressed export is damaged or truncated ({exc})") from exc

    def _load_table(self, path: Path, size: int) -> pa.Table:
        layout = self.read_layout()
        fmt = layout.fmt
        identity = source_identity(path, sample=True)
        self.stats = LoadStats(
            source_bytes=size,
            source_fingerprint=identity["fingerprint"],
            source_mtime_ns=identity["mtime_ns"],
            delimiter="::" if fmt.double_colon else fmt.delimiter.decode(),
            has_header=fmt.has_header,
        )
        if self.checkpoint is None:
            load = self._start(layout, None)
            load.run(lines_per_segment=self.rows_per_checkpoint, block_bytes=self.block_bytes)
        else:
            with self.checkpoint.locked():
                self.checkpoint.bind(path, identity, fmt)
                load = self._start(layout, self.checkpoint)
                if not load.progress.complete:
                    load.run(lines_per_segment=self.rows_per_checkpoint, block_bytes=self.block_bytes)

        progress = load.progress
        self.stats.rows = progress.rows
        self.stats.blank_lines = progress.blank_lines
        self.stats.malformed_rows = progress.malformed_rows
        if progress.rows == 0:
            what = "has a header but no data rows" if fmt.has_header else "has no data rows"
            raise ExportError(f"{path}: the export {what}")
        tables = load.tables
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]

    def discard_checkpoint(self) -> bool:
        """Remove the manifest and its parts (call after the result has been published).

        The removal happens under the checkpoint's lock, so a load that started
        after this one released it never sees its files vanish.  When such a
        load holds the lock, the checkpoint is left to it (it resumes from it
        and discards it in turn) and this returns False.
        """
        store = self.checkpoint
        if store is None:
            return True
        if store.is_locked:
            store.discard()
            return True
        try:
            with store.locked():
                store.discard()
        except BusyError:
            log.info("checkpoint %s is in use by another load; leaving it to that load", store.manifest)
            return False
        return True

    def read_layout(self) -> ExportLayout:
        """Detect the export's format from its first line; where the data lines start."""
        path = self.file_path
        with open_export(path, self.gzip_limits) as f:
            first = read_first_line(f, max_line_bytes=self.max_line_bytes)
        if first.too_long:
            raise ExportError(
                f"{path}: line 1 is longer than max_line_bytes ({self.max_line_bytes:,} bytes); "
                "a ratings export starts with a short header or rating line - is this the right file?"
            )
        if not first.text.strip():
            raise ExportError(f"{path}: line 1 is empty; expected a header or a rating")
        try:
            fmt = detect_format(
                first.text,
                delimiter=self.delimiter,
                has_header=self.has_header,
                column_map=self.column_map,
                source=str(path),
            )
        except ExportFormatError as exc:
            raise ExportError(str(exc)) from exc
        if fmt.has_header:
            return ExportLayout(fmt, first.next_offset, 2)
        return ExportLayout(fmt, first.start, 1)

    # ---------------------------------------------------------------- internal
    def _start(self, layout: ExportLayout, store: CheckpointStore | None) -> _Load:
        """The per-load object: resumed from the checkpoint where possible, else from the first data line."""
        resumed, reason = store.resume() if store is not None else (None, None)
        if reason is not None:
            self.stats.restart_reason = reason
        if resumed is None:
            progress, tables = Progress(offset=layout.data_offset, next_line=layout.first_line), []
        else:
            progress, tables = resumed.progress, resumed.tables
            self.stats.resumed_rows = progress.rows
            self.stats.reread_rows = resumed.reread_rows
            log.info(
                "resuming %s from line %d (%d rows checkpointed)", self.file_path, progress.next_line, progress.rows
            )
        return _Load(
            path=self.file_path,
            layout=layout,
            progress=progress,
            tables=tables,
            stats=self.stats,
            store=store,
            on_checkpoint=self.on_checkpoint,
            max_line_bytes=self.max_line_bytes,
            gzip_limits=self.gzip_limits,
        )
