"""Framing: reading an export in blocks and cutting it into whole lines.

Nothing here parses a field.  :func:`open_export` opens an export, plain or
gzip-compressed (recognised by its magic bytes, whatever its name), with
:class:`GzipLimits` capping what a compressed export may decompress to (a small
file can expand a thousandfold: a "gzip bomb"); :func:`read_first_line` finds the header (or
first data line); :func:`iter_regions` reads the data region through one
reusable buffer and hands out runs of checkpoint segments that end on line
boundaries; :func:`read_lines` fetches the exact text of given line numbers.
"""

import gzip
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple

import numpy as np

from recsys_assets.core.formats import BOM, ExportError

_PIECE = 1 << 16
GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(path: str | os.PathLike) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


class ExportTooLargeError(ExportError):
    """A gzip-compressed export decompresses to more bytes or rows, or expands more, than its caps allow (never
    retried)."""


@dataclass(frozen=True)
class GzipLimits:
    """Caps on a gzip-compressed export: decompressed bytes, data rows and compression ratio (``None``: no cap).

    ``max_ratio`` caps decompressed bytes per compressed byte read so far (real CSV exports compress 3 to 10
    times, a bomb a thousand times); it is checked from :data:`RATIO_MIN_BYTES` decompressed bytes on, every
    :data:`CHECK_BYTES` at most, so a bomb stops after a few MiB.  The pipeline sets the caps from
    ``RECSYS_GZIP_MAX_BYTES``, ``RECSYS_GZIP_MAX_ROWS`` and ``RECSYS_GZIP_MAX_RATIO``."""

    max_bytes: int | None = None
    max_rows: int | None = None
    max_ratio: float | None = None

    def check_bytes(self, path: str | os.PathLike, decompressed: int) -> None:
        if self.max_bytes is not None and decompressed > self.max_bytes:
            raise ExportTooLargeError(
                f"{path}: the gzip-compressed export decompresses to more than {self.max_bytes:,} bytes, the cap "
                "set by RECSYS_GZIP_MAX_BYTES; raise it if the export is genuine"
            )

    def check_rows(self, path: str | os.PathLike, rows: int) -> None:
        if self.max_rows is not None and rows > self.max_rows:
            raise ExportTooLargeError(
                f"{path}: the gzip-compressed export has more than {self.max_rows:,} rows, the cap set by "
                "RECSYS_GZIP_MAX_ROWS; raise it if the export is genuine"
            )

    def check_ratio(self, path: str | os.PathLike, decompressed: int, compressed: int) -> None:
        """Raise when ``decompressed`` bytes (at least :data:`RATIO_MIN_BYTES`) came from too few ``compressed``."""
        if self.max_ratio is None or decompressed < RATIO_MIN_BYTES:
            return
        if decompressed > self.max_ratio * max(compressed, 1):
            raise ExportTooLargeError(
                f"{path}: the gzip-compressed export expands more than {self.max_ratio:g} times "
                f"({decompressed:,} bytes from {compressed:,}), the cap set by RECSYS_GZIP_MAX_RATIO "
                "(ratings exports compress 3 to 10 times); raise it if the export is genuine"
            )


RATIO_MIN_BYTES = 1 << 20  # the compression ratio is judged from this many decompressed bytes on
CHECK_BYTES = 1 << 20  # the caps are checked at least this often (in decompressed bytes)


class _CappedGzipFile(gzip.GzipFile):
    """A ``GzipFile`` that raises :class:`ExportTooLargeError` once it has decompressed past ``limits.max_bytes``
    or past ``limits.max_ratio`` times the compressed bytes read (checked every :data:`CHECK_BYTES` at most, so
    little is ever decompressed beyond a cap)."""

    def __init__(self, path: str | os.PathLike, limits: GzipLimits):
        super().__init__(path, "rb")
        self.limits, self.path = limits, path

    def _check(self) -> None:
        decompressed = self.tell()
        self.limits.check_bytes(self.path, decompressed)
        compressed = self.fileobj.tell() if self.fileobj is not None else 0  # includes a read-ahead: conservative
        self.limits.check_ratio(self.path, decompressed, compressed)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > CHECK_BYTES:  # never much at once: in pieces, each checked
            return b"".join(self._pieces(None if size is None or size < 0 else size))
        data = super().read(size)
        self._check()
        return data

    def _pieces(self, size: int | None) -> Iterator[bytes]:
        """Up to ``size`` bytes (``None``: the rest), read :data:`CHECK_BYTES` at most at a time."""
        while size is None or size > 0:
            piece = self.read(CHECK_BYTES if size is None else min(size, CHECK_BYTES))
            if not piece:
                return
            yield piece
            size = None if size is None else size - len(piece)

    def readinto(self, b) -> int:
        view = memoryview(b).cast("B")
        filled = 0
        while filled < len(view):
            piece = self.read(min(len(view) - filled, CHECK_BYTES))
            if not piece:
                break
            view[filled : filled + len(piece)] = piece
            filled += len(piece)
        return filled


def open_export(path: str | os.PathLike, limits: GzipLimits | None = None) -> BinaryIO:
    """Open an export for reading bytes, decompressing it when it is gzip (offsets are then in the text),
    within ``limits`` when given."""
    if not is_gzip(path):
        return open(path, "rb")
    return _CappedGzipFile(path, limits) if limits is not None else gzip.open(path, "rb")


def compressed_position(f: BinaryIO) -> int | None:
    """How far into the file on disk a reader from :func:`open_export` has got, for a gzip export."""
    raw = getattr(f, "fileobj", None) if isinstance(f, gzip.GzipFile) else None
    return raw.tell() if raw is not None else None


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


@dataclass(frozen=True)
class FirstLine:
    """The first line of a file: its bytes (BOM and line ending removed) and where it lies."""

    text: bytes
    start: int  # byte offset of the line (after a BOM)
    next_offset: int  # byte offset of the line after it (the file size when there is none)
    too_long: bool = False  # longer than the limit given to read_first_line (``text`` is cut short)


def read_first_line(f: BinaryIO, *, max_line_bytes: int | None = None, block_bytes: int = 1 << 16) -> FirstLine:
    """Read the first line of ``f`` (from its start), in blocks collected in a list (linear time).

    Stops reading once the line is known to be longer than ``max_line_bytes``.
    """
    f.seek(0)
    blocks: list[bytes] = []
    total = 0
    limit = None if max_line_bytes is None else max_line_bytes + len(BOM) + 2  # BOM and CRLF do not count
    while limit is None or total <= limit:
        block = f.read(block_bytes)
        if not block:
            break
        total += len(block)
        blocks.append(block)
        if b"\n" in block:
            break
    head = b"".join(blocks)
    start = len(BOM) if head.startswith(BOM) else 0
    end = head.find(b"\n", start)
    line = (head[start:] if end < 0 else head[start:end]).rstrip(b"\r")
    too_long = max_line_bytes is not None and len(line) > max_line_bytes
    return FirstLine(line, start, total if end < 0 else end + 1, too_long)


class Segment(NamedTuple):
    """Whole lines ``buf[start:end]``: ``lines`` of them, standing for ``file_bytes`` bytes of the file.

    ``file_bytes`` exceeds ``end - start`` when a too-long line was cut short
    in the buffer (see :func:`iter_regions`).
    """

    start: int
    end: int
    lines: int
    file_bytes: int


@dataclass
class Region:
    """Consecutive segments of ``buf``, each ending on a line boundary.

    ``buf`` is the reader's reusable buffer: it is only valid until the
    generator that produced the region is resumed.  ``may_have_long_lines``:
    a line in the region may be longer than the reader's ``max_line_bytes``
    (a conservative flag; False means none is).
    """

    buf: bytearray
    segments: list[Segment]
    may_have_long_lines: bool = False


def _may_have_long_lines(cum: np.ndarray, n_bytes: int, max_line_bytes: int | None) -> bool:
    """Whether ``n_bytes`` of buffer with newline counts ``cum`` per piece may hold a line over the limit.

    Such a line covers at least ``max_line_bytes // _PIECE - 1`` whole pieces
    without a newline; no such run of empty pieces means no such line.
    """
    if max_line_bytes is None or n_bytes <= max_line_bytes:
        return False
    run = max_line_bytes // _PIECE - 1
    if run < 1:
        return True
    empty = np.diff(cum) == 0
    if not empty.any():
        return False
    edges = np.diff(np.concatenate(([0], empty.astype(np.int8), [0])))
    return bool((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).max() >= run)


def iter_regions(
    f: BinaryIO, *, lines_per_segment: int, block_bytes: int, max_line_bytes: int | None = None
) -> Iterator[Region]:
    """Read ``f`` from its current position to the end, one segment of ``lines_per_segment`` lines at a time.

    Reads go into one reusable buffer that holds the unconsumed tail of the
    previous read and the next block; it only grows (doubling, so linear
    overall) when a segment is longer than a block, and each byte is scanned
    for newlines once.  Each yielded region holds every whole segment in the
    buffer; the last one holds the file's last lines, possibly without a final
    newline.

    A line longer than ``max_line_bytes`` is kept only up to ``max_line_bytes
    + 2`` bytes (enough for the parser to see that it is too long); the rest of
    it is read and dropped, so memory stays bounded by the limit plus a block.
    """
    yield from _RegionReader(f, lines_per_segment, block_bytes, max_line_bytes).regions()


class _RegionReader:
    """:func:`iter_regions`' state: the buffer, the newline masks of ``buf[:filled]`` (one per read, each byte
    scanned once) and the too-long lines cut short in it (``[position in buf, bytes dropped there]``)."""

    def __init__(self, f: BinaryIO, lines_per_segment: int, block_bytes: int, max_line_bytes: int | None):
        self.f, self.per, self.block, self.max_line = f, lines_per_segment, block_bytes, max_line_bytes
        self.buf = bytearray(block_bytes)
        self.filled = 0
        self.masks: list[np.ndarray] = []
        self.n_newlines = 0
        self.line_start = 0  # where the line being read starts in buf
        self.cuts: list[list[int]] = []
        self.skipping = False  # inside a too-long line, dropping bytes up to its newline
        self.eof = False

    def regions(self) -> Iterator[Region]:
        while not self.eof:
            if not self._read():
                continue
            if not self.filled:
                break
            if not self.eof and (self.skipping or self.n_newlines < self.per):
                continue  # inside a too-long line, or the segment needs more than a block: read on
            mask, cum, bounds, cut = self._segments()
            if bounds:
                segments = [
                    Segment(s, e, k, e - s + sum(d for pos, d in self.cuts if s < pos <= e)) for s, e, k in bounds
                ]
                yield Region(self.buf, segments, _may_have_long_lines(cum, cut, self.max_line))
            self._keep_tail(mask, cut)
            del mask, cum

    def _read(self) -> bool:
        """Read the next block into the buffer; False when all it read was dropped (a too-long line's)."""
        if len(self.buf) - self.filled < self.block:  # grow by doubling: linear overall
            grown = bytearray(max(2 * len(self.buf), self.filled + self.block))
            grown[: self.filled] = memoryview(self.buf)[: self.filled]
            self.buf = grown
        buf, filled = self.buf, self.filled
        got = self.f.readinto(memoryview(buf)[filled : filled + self.block])
        self.eof = not got
        if not got:
            return True
        new = np.frombuffer(buf, dtype=np.uint8, count=got, offset=filled) == 10
        if self.skipping:
            if not new.any():
                self.cuts[-1][1] += got
                return False
            p = int(np.argmax(new))
            self.cuts[-1][1] += p
            buf[filled : filled + got - p] = buf[filled + p : filled + got]
            new, got, self.skipping = new[p:], got - p, False
        self.masks.append(new)
        self.n_newlines += int(np.count_nonzero(new))
        self.filled += got
        if self.max_line is not None:
            self._cut_long_line(got, self.max_line)
        return True

    def _cut_long_line(self, got: int, max_line: int) -> None:
        """Keep the line being read only up to ``max_line + 2`` bytes and drop the rest of it."""
        last = self.buf.rfind(b"\n", self.filled - got, self.filled)  # memrchr: stops at the last newline
        if last >= 0:
            self.line_start = last + 1
        if self.filled - self.line_start > max_line + 2:
            keep = self.line_start + max_line + 2
            self.cuts.append([keep, self.filled - keep])
            self.masks = [np.concatenate(self.masks)[:keep]]
            self.filled, self.skipping = keep, True

    def _segments(self) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, int]], int]:
        """The buffer's mask and piece counts, its whole segments ``(start, end, lines)`` and where they end."""
        mask = self.masks[0] if len(self.masks) == 1 else np.concatenate(self.masks)
        cum = _piece_counts(mask)
        n_full = self.n_newlines // self.per
        boundaries = np.arange(1, n_full + 1, dtype=np.int64) * self.per - 1
        ends = (_newline_positions(mask, cum, boundaries) + 1).tolist()
        bounds = [(0 if k == 0 else ends[k - 1], ends[k], self.per) for k in range(n_full)]
        cut = ends[-1] if ends else 0
        self.n_newlines -= n_full * self.per
        if self.eof and cut < self.filled:  # the last lines, possibly without a final newline
            bounds.append((cut, self.filled, self.n_newlines + (0 if self.buf[self.filled - 1] == 10 else 1)))
            cut = self.filled
        return mask, cum, bounds, cut

    def _keep_tail(self, mask: np.ndarray, cut: int) -> None:
        """Move the unconsumed tail ``buf[cut:filled]`` to the front, in place."""
        filled = self.filled
        self.masks = [mask[cut:filled]] if cut < filled else []
        self.buf[: filled - cut] = memoryview(self.buf)[cut:filled]
        self.filled -= cut
        self.line_start = max(0, self.line_start - cut)
        self.cuts = [[pos - cut, d] for pos, d in self.cuts if pos > cut]


def read_lines(path: str | os.PathLike, line_numbers, block_bytes: int = 32 << 20) -> dict[int, str]:
    """The text of the given 1-based line numbers of a file (line endings and BOM removed).

    One sequential scan; used to show the exact raw text of quarantined rows
    that parsed (and so were not kept as text by the loader).
    """
    wanted = np.unique(np.asarray(list(line_numbers), dtype=np.int64))
    out: dict[int, str] = {}
    if not len(wanted):
        return out
    wanted_set = set(wanted.tolist())
    line = 1  # number of the line that starts at the beginning of buf
    buf = b""
    with open_export(path) as f:
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
                    text = text[len(BOM) :]
                out[int(n)] = text.decode("utf-8", errors="replace")
            if eof or hi == len(wanted):
                break
            if not len(newlines) and line not in wanted_set:
                buf = b""  # inside a long line nobody asked for: do not keep it
                continue
            cut = int(newlines[-1]) + 1 if len(newlines) else 0
            line += len(newlines)
            buf = buf[cut:]
    return out
