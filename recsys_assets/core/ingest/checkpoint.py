"""The loader's checkpoint: a JSON manifest, Arrow IPC parts, a lock and a high-water mark.

On disk, for a manifest ``<name>`` (format version :data:`MANIFEST_VERSION`):

* ``<name>``: ``{"body": {...}, "checksum": sha256(body)}``, replaced atomically
  at each checkpoint.  The body binds the checkpoint to the source file (path,
  size, modification time, a fingerprint of its first and last MiB and one of
  16 blocks sampled across the rest: :mod:`~recsys_assets.core.ingest.identity`) and to the
  format settings, and records the progress (byte offset in the text - for a
  gzip export, in the decompressed text - next line number, counts, number of
  parts, whether the load completed);
* ``<name>.parts/part-000001.arrow`` ...: the rows parsed between two
  checkpoints, uncompressed Arrow IPC files (:mod:`~recsys_assets.core.ingest.parts`), each written to a
  temporary name and renamed.  Nothing is ever unpickled;
* ``<name>.lock``: the advisory lock that keeps two loads off one checkpoint;
* ``<name>.hwm``: the next line number reached by a killed load (written in
  place, fixed width) - it only feeds the ``reread_rows`` statistic.

Every one of these paths (and the temporary files beside them) stays in the
manifest's folder: one that is a symbolic link is refused with a
:class:`CheckpointPathError` before anything is written or deleted, so a link
planted in the checkpoint folder cannot make a load write or delete elsewhere.

A manifest that is corrupt, of another version, for another source or format,
or whose parts are missing is logged as a warning and the load starts over.

Limit: the source's identity reads about 3 MiB of it, not all of it.  An edit
in place that keeps the size and the modification time (which takes a tool
that deliberately restores it) and changes none of the bytes read is not
noticed, and a resume would reuse the rows checkpointed before the edit.
Remove the checkpoint (``MovieDataLoader.discard_checkpoint``) after such an
edit, or publish a new export as a new file, as exporters normally do.
"""

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from recsys_assets.core.atomic import atomic_write_bytes, fixed_tmp_path
from recsys_assets.core.formats import ExportFormat
from recsys_assets.core.ingest.parts import part_name, read_part, write_part
from recsys_assets.core.locks import FileLock

log = logging.getLogger(__name__)

MANIFEST_VERSION = 2  # 2: parts are Arrow IPC files (1: Parquet)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


@dataclass(kw_only=True)
class Progress:
    """How far a load has got: what a manifest records."""

    offset: int  # byte offset of the next line to read
    next_line: int  # its 1-based line number
    rows: int = 0
    blank_lines: int = 0
    malformed_rows: int = 0
    parts: int = 0  # part-000001.arrow .. part-<parts>.arrow
    complete: bool = False


@dataclass
class Resumed:
    """What :meth:`CheckpointStore.resume` found: the progress and the rows of its parts."""

    progress: Progress
    tables: list[pa.Table] = field(default_factory=list)
    reread_rows: int = 0


class CheckpointPathError(ValueError):
    """A checkpoint path that would reach outside the checkpoint folder."""


def confined_checkpoint_path(folder: str | os.PathLike, name: str, *, default: str) -> Path:
    """The manifest path for ``name`` (``default`` when empty), refused unless it stays inside ``folder``.

    A load discards its manifest and ``<manifest>.parts/`` when it is done, so a
    manifest path that reached any other file would delete it.  ``name`` is
    taken relative to ``folder``; after resolving ``..`` and symbolic links it
    must lie inside ``folder`` and end in ``.json``.  Nothing is touched here.
    """
    folder = Path(folder)
    path = Path(name or default)
    if not path.is_absolute():
        path = folder / path
    inside = folder.resolve()
    resolved = path.resolve()
    if resolved == inside or not resolved.is_relative_to(inside):
        raise CheckpointPathError(
            f"checkpoint_file {name!r} is outside the checkpoint folder {folder}; "
            "use a file name inside it (for example 'raw_ratings.checkpoint.json')"
        )
    if resolved.suffix != ".json":
        raise CheckpointPathError(
            f"checkpoint_file {name!r} must be a .json manifest name inside {folder} "
            "(the load deletes it, and <name>.parts/, when it is done)"
        )
    return resolved


def refuse_link(path: Path, folder: Path) -> None:
    """Raise :class:`CheckpointPathError` when ``path`` is a symbolic link (it would lead out of ``folder``)."""
    if path.is_symlink():
        raise CheckpointPathError(
            f"checkpoint path {path} is a symbolic link (to {os.readlink(path)}); a load writes and deletes "
            f"only plain files inside the checkpoint folder {folder}: remove the link"
        )


def _checksum(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _format_doc(fmt: ExportFormat) -> dict:
    return {
        "delimiter": fmt.delimiter.hex(),
        "has_header": fmt.has_header,
        "field_names": list(fmt.field_names),
        "columns": fmt.columns,
    }


class CheckpointStore:
    """The checkpoint of one manifest path: resume, commit, finish and discard (see the module docs).

    Use as ``with store.locked(): ...``; every method but :meth:`discard` and
    :meth:`locked` expects the lock to be held.  :meth:`bind` names the source
    and format the checkpoint is for, before :meth:`resume` or :meth:`commit`.
    """

    def __init__(self, manifest: str | os.PathLike):
        self.manifest = Path(manifest)
        self.parts_dir = self._sidecar(".parts")
        self._lock = FileLock(
            self._sidecar(".lock"),
            f"checkpoint {self.manifest}",
            busy_message=(
                f"checkpoint {self.manifest} is in use by another load; "
                "wait for it to finish or use another checkpoint_file"
            ),
        )
        self._hwm_fd: int | None = None
        self._head: dict | None = None

    def _sidecar(self, suffix: str) -> Path:
        return self.manifest.with_name(self.manifest.name + suffix)

    def _confine(self) -> None:
        """Refuse to go on when a path of the checkpoint is a symbolic link (see the module docs)."""
        paths = (self.manifest, fixed_tmp_path(self.manifest), self.parts_dir, self._lock.path, self._sidecar(".hwm"))
        for path in paths:
            refuse_link(path, self.manifest.parent)

    # ------------------------------------------------------------------ lock
    def locked(self) -> FileLock:
        """The checkpoint's lock, as a context manager (raises ``BusyError`` when another load holds it,
        ``CheckpointPathError`` when a path of the checkpoint is a symbolic link)."""
        self.manifest.parent.mkdir(parents=True, exist_ok=True)
        self._confine()
        return self._lock

    @property
    def is_locked(self) -> bool:
        return self._lock.held

    # --------------------------------------------------------------- resume
    def bind(self, source: Path, identity: dict, fmt: ExportFormat) -> None:
        """Name the source (its path and ``identity.source_identity``) and format this checkpoint is for."""
        self._head = {"source": {"path": str(source.resolve()), **identity}, "format": _format_doc(fmt)}

    def resume(self) -> tuple[Resumed | None, str | None]:
        """The checkpointed progress and rows, or ``(None, why not)``; a checkpoint that cannot be resumed is removed."""
        assert self._head is not None, "bind() first"
        if not self.manifest.exists():
            if self.parts_dir.exists():  # parts of a load killed before its first manifest
                self.discard()
            return None, None
        try:
            body = self._manifest_body()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return None, self._start_over(f"checkpoint is corrupt ({type(exc).__name__}: {exc})")
        changed = self._changed(body)
        if changed:
            return None, self._start_over(changed)
        try:
            tables = self._parts(body)
        except (OSError, ValueError, pa.ArrowException) as exc:
            return None, self._start_over(f"checkpoint part unreadable ({exc})")
        progress = Progress(
            offset=body["offset"],
            next_line=body["next_line"],
            rows=body["rows"],
            blank_lines=body["blank_lines"],
            malformed_rows=body["malformed_rows"],
            parts=body["parts"],
            complete=body["complete"],
        )
        self._drop_orphans(progress.parts)
        return Resumed(progress, tables, self._reread(progress)), None

    def _manifest_body(self) -> dict:
        """The manifest's body, checked (checksum, version); raises on any damage."""
        doc = json.loads(self.manifest.read_bytes())
        body = doc["body"]
        if doc["checksum"] != _checksum(body):
            raise ValueError("checksum mismatch")
        if body["version"] != MANIFEST_VERSION:
            raise ValueError(f"manifest version {body['version']}")
        return body

    def _changed(self, body: dict) -> str | None:
        """Why the checkpoint is not of the bound export and format, or None."""
        assert self._head is not None
        src, expected = body["source"], self._head["source"]
        keys = ("size", "mtime_ns", "fingerprint", "sampled")  # a manifest without "sampled" starts over
        if any(src.get(k) != expected.get(k) for k in keys):
            return "the export changed since the checkpoint was written"
        if body["format"] != self._head["format"]:
            return "the export's format settings changed"
        return None

    def _parts(self, body: dict) -> list:
        """The checkpointed Arrow parts; raises when one is unreadable or the row count disagrees."""
        tables = []
        for k in range(1, body["parts"] + 1):
            path = self.parts_dir / part_name(k)
            refuse_link(path, self.parts_dir)  # a ValueError: the load starts over, the link is removed
            tables.append(read_part(path))
        found = sum(t.num_rows for t in tables)
        if found != body["rows"]:
            raise ValueError(f"parts hold {found} rows, the manifest says {body['rows']}")
        return tables

    def _drop_orphans(self, parts: int) -> None:
        """Remove part files the manifest does not list (written by a load killed before its manifest)."""
        listed = {part_name(k) for k in range(1, parts + 1)}
        for orphan in self.parts_dir.glob("*") if self.parts_dir.exists() else []:
            if orphan.name not in listed:
                orphan.unlink(missing_ok=True)

    def _reread(self, progress: Progress) -> int:
        """Lines past the checkpoint that an earlier load already read (the high-water mark)."""
        hwm = self._sidecar(".hwm")
        if hwm.exists():
            with contextlib.suppress(ValueError):
                return max(0, int(hwm.read_text()) - progress.next_line)
        return 0

    def _start_over(self, reason: str) -> str:
        log.warning("checkpoint %s not resumed: %s; loading from the start", self.manifest, reason)
        self.discard()
        return reason

    # --------------------------------------------------------------- commit
    def open(self) -> None:
        """Prepare to commit: the parts folder and the high-water mark file."""
        self._confine()
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        if self._hwm_fd is None:
            hwm = self._sidecar(".hwm")
            fd = os.open(hwm, os.O_WRONLY | os.O_CREAT | _NOFOLLOW, 0o666)
            if os.fstat(fd).st_nlink > 1:  # a hard link: writing in place would change another file
                os.close(fd)
                raise CheckpointPathError(f"checkpoint file {hwm} has other hard links; remove it")
            self._hwm_fd = fd

    def close(self) -> None:
        fd, self._hwm_fd = self._hwm_fd, None
        if fd is not None:
            os.close(fd)

    def commit(self, table: pa.Table, progress: Progress) -> None:
        """Checkpoint the rows parsed since the last commit; ``progress`` already counts them.

        Order: high-water mark, part (then ``progress.parts`` counts it), manifest.
        """
        assert self._hwm_fd is not None, "open() first"
        # fixed width, written in place: a reader sees a whole number or (after a crash) a
        # torn one, which resume ignores; it only feeds the reread_rows statistic
        os.pwrite(self._hwm_fd, b"%020d" % progress.next_line, 0)
        part = self.parts_dir / part_name(progress.parts + 1)
        refuse_link(fixed_tmp_path(part), self.parts_dir)  # written through, then renamed
        write_part(table, part)
        progress.parts += 1
        self._write_manifest(progress)

    def finish(self, progress: Progress) -> None:
        """Record that the load reached the end of the source."""
        progress.complete = True
        self._write_manifest(progress)

    def _write_manifest(self, progress: Progress) -> None:
        assert self._head is not None, "bind() first"
        body = {
            "version": MANIFEST_VERSION,
            **self._head,
            "offset": progress.offset,
            "next_line": progress.next_line,
            "rows": progress.rows,
            "blank_lines": progress.blank_lines,
            "malformed_rows": progress.malformed_rows,
            "parts": progress.parts,
            "complete": progress.complete,
        }
        doc = {"body": body, "checksum": _checksum(body)}
        atomic_write_bytes(self.manifest, json.dumps(doc).encode(), fixed_tmp=True)  # only the lock holder writes

    # -------------------------------------------------------------- discard
    def discard(self) -> None:
        """Remove the manifest, its parts and the high-water mark (the lock file stays); a link among them
        is refused (``CheckpointPathError``) before anything is removed."""
        self.close()
        self._confine()
        self.manifest.unlink(missing_ok=True)
        fixed_tmp_path(self.manifest).unlink(missing_ok=True)
        self._sidecar(".hwm").unlink(missing_ok=True)
        if self.parts_dir.exists():
            for p in self.parts_dir.iterdir():
                p.unlink(missing_ok=True)
            self.parts_dir.rmdir()
