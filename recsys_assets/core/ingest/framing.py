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
    """A gzip-compressed export decompresses to more bytes or rows than its cap allows (never retried)."""


@dataclass(frozen=True)
class GzipLimits:
    """Caps on a gzip-compressed export: decompressed bytes and data rows (``None``: no cap).

    The pipeline sets them from ``RECSYS_GZIP_MAX_BYTES`` and ``RECSYS_GZIP_MAX_ROWS``."""

    max_bytes: int | None = None
    max_rows: int | None = None

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


class _CappedGzipFile(gzip.GzipFile):
    """A ``GzipFile`` that raises :class:`ExportTooLargeError` once it has decompressed past ``limits.max_bytes``
    (checked after each read, so at most one read beyond the cap is ever held)."""

    def __init__(self, path: str | os.PathLike, limits: GzipLimits):
        super().__init__(path, "rb")
        self.limits, self.path = limits, path

    def read(self, size: int | None = -1) -> bytes:
        if (size is None or size < 0) and self.limits.max_bytes is not None:  # never the whole rest at once
            size = self.limits.max_bytes - self.tell() + 1
        data = super().read(size)
        self.limits.check_bytes(self.path, self.tell())
        return data

    def readinto(self, b) -> int:
        got = super().readinto(b)
        self.limits.check_bytes(self.path, self.tell())
        return got


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
    buf = bytearray(block_bytes)
    filled = 0
    masks: list[np.ndarray] = []  # newline masks of buf[:filled], one per read (each byte scanned once)
    n_newlines = 0
    line_start = 0  # where the line being read starts in buf
    cuts: list[list[int]] = []  # [position in buf, bytes dropped there] for too-long lines cut short
    skipping = False  # inside a too-long line, dropping bytes up to its newline
    eof = False
    while not eof:
        if len(buf) - filled < block_bytes:
            grown = bytearray(max(2 * len(buf), filled + block_bytes))
            grown[:filled] = memoryview(buf)[:filled]
            buf = grown
        got = f.readinto(memoryview(buf)[filled : filled + block_bytes])
        eof = not got
        if got:
            new = np.frombuffer(buf, dtype=np.uint8, count=got, offset=filled) == 10
            if skipping:
                if not new.any():
                    cuts[-1][1] += got
                    continue
                p = int(np.argmax(new))
                cuts[-1][1] += p
                buf[filled : filled + got - p] = buf[filled + p : filled + got]
                new, got, skipping = new[p:], got - p, False
            masks.append(new)
            n_newlines += int(np.count_nonzero(new))
            filled += got
            if max_line_bytes is not None:
                last = buf.rfind(b"\n", filled - got, filled)  # memrchr: stops at the last newline
                if last >= 0:
                    line_start = last + 1
                if filled - line_start > max_line_bytes + 2:  # cut the line short; drop the rest
                    keep = line_start + max_line_bytes + 2
                    cuts.append([keep, filled - keep])
                    masks = [np.concatenate(masks)[:keep]]
                    filled, skipping = keep, True
        if not filled:
            break
        if skipping and not eof:
            continue
        if n_newlines < lines_per_segment and not eof:
            continue  # the segment needs more than a block: read on
        mask = masks[0] if len(masks) == 1 else np.concatenate(masks)
        cum = _piece_counts(mask)
        n_full = n_newlines // lines_per_segment
        boundaries = np.arange(1, n_full + 1, dtype=np.int64) * lines_per_segment - 1
        ends = (_newline_positions(mask, cum, boundaries) + 1).tolist()
        bounds = [(0 if k == 0 else ends[k - 1], ends[k], lines_per_segment) for k in range(n_full)]
        cut = ends[-1] if ends else 0
        n_newlines -= n_full * lines_per_segment
        if eof and cut < filled:  # the last lines, possibly without a final newline
            bounds.append((cut, filled, n_newlines + (0 if buf[filled - 1] == 10 else 1)))
            cut = filled
        if bounds:
            segments = [Segment(s, e, k, e - s + sum(d for pos, d in cuts if s < pos <= e)) for s, e, k in bounds]
            yield Region(buf, segments, _may_have_long_lines(cum, cut, max_line_bytes))
        masks = [mask[cut:filled]] if cut < filled else []
        del mask
        buf[: filled - cut] = memoryview(buf)[cut:filled]  # keep the tail, in place
        filled -= cut
        line_start = max(0, line_start - cut)
        cuts = [[pos - cut, d] for pos, d in cuts if pos > cut]


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
