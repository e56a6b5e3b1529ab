"""Which file is the current export, and whether it has finished arriving.

An export either replaces the file at ``RECSYS_EXPORT_PATH`` or lands as a new
file in a drop folder (default ``data/exports/``).  The complete file that
arrived last in the drop folder is the current export (:func:`arrival`: by the
time the kernel records, not by the modification time a file may carry from
elsewhere); with none there, the fixed path is.
Files still being written are skipped: names with a temporary suffix or a
leading dot, and files whose size or modification time changed between two
looks (see :class:`ExportWatcher`).  A symbolic link in the drop folder that
leads outside it is never followed (:func:`drop_folder_files` says why it was
left out, for the sensor's reason and the ingest log): whoever can write into
the drop folder must not make the pipeline read, and show, any file the
pipeline's user can read.

The demo export (``recsys sample``) leaves a marker beside itself (``.<name>.sample``, the content
fingerprints of the demos written at that path), so the CLI and the sensor can tell it from a user's
own file.
"""

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from recsys_assets.core.ingest.identity import source_identity

EXPORT_SUFFIXES = (".csv", ".dat", ".data", ".tsv", ".txt", ".csv.gz", ".dat.gz", ".data.gz", ".tsv.gz", ".txt.gz")
TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".download", ".filepart", ".swp")


def is_complete_name(path: Path) -> bool:
    name = path.name.lower()
    return (
        not name.startswith(".")
        and not name.endswith(TEMP_SUFFIXES)
        and (name.endswith(EXPORT_SUFFIXES) or name in ("u.data", "u.data.gz"))
    )


def drop_folder_files(folder: Path) -> tuple[list[Path], list[str]]:
    """The complete-looking files in ``folder``, and a sentence for each one left out as a link out of it."""
    inside = os.path.realpath(folder)
    files: list[Path] = []
    refused: list[str] = []
    for path in sorted(folder.iterdir()):
        if not is_complete_name(path):
            continue
        if path.is_symlink():
            target = os.path.realpath(path)  # every link in the chain followed, without raising on a loop
            if os.path.commonpath([inside, target]) != inside:
                refused.append(f"{path} is a symbolic link to {target}, outside the drop folder: not followed")
                continue
        if path.is_file():
            files.append(path)
    return files, refused


def arrival(path: Path) -> tuple[int, int, str]:
    """When ``path`` arrived in its folder, as a sort key: its inode change time (``st_ctime``), then its
    modification time no later than that, then its name.

    The kernel sets the change time when a file is created, copied or renamed into the folder, and no
    ``touch`` or ``cp -p`` can set it, whereas the modification time is whatever the writer chose: a
    file dated in the future would otherwise shadow every later export, and one copied with its old
    date would never become current.  For a link, the later of the link's and its target's change
    time.  (A ``chmod``, ``chown`` or rename of a file also changes it: such a file counts as arrived.)
    """
    st, own = path.stat(), path.lstat()
    arrived = max(st.st_ctime_ns, own.st_ctime_ns)
    return arrived, min(st.st_mtime_ns, arrived), path.name


def current_export(export_path: str | os.PathLike, drop_dir: str | os.PathLike | None) -> Path:
    """The complete-looking file in ``drop_dir`` that arrived last (:func:`arrival`; links out of the folder
    left out), else ``export_path``."""
    if drop_dir:
        folder = Path(drop_dir)
        if folder.is_dir():
            candidates, _ = drop_folder_files(folder)
            if candidates:
                return max(candidates, key=arrival)
    return Path(export_path)


def refused_exports(drop_dir: str | os.PathLike | None) -> list[str]:
    """Why files in ``drop_dir`` were not taken as exports (links out of the folder); empty when none."""
    folder = Path(drop_dir) if drop_dir else None
    if folder is None or not folder.is_dir():
        return []
    return drop_folder_files(folder)[1]


@dataclass(frozen=True)
class ExportLook:
    """One look at the current export: what a sensor compares between ticks."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def take(cls, path: Path) -> "ExportLook | str":
        """A look at ``path``, or why there is nothing to look at (missing, not a file, unreadable)."""
        try:
            st = path.stat()
        except FileNotFoundError:
            return f"no export at {path}"
        except OSError as exc:  # a symlink loop, a permission error, a name too long
            return f"cannot look at the export {path}: {exc.strerror or exc}"
        if not stat.S_ISREG(st.st_mode):
            return f"the export {path} is not a regular file"
        return cls(str(path), st.st_size, st.st_mtime_ns)

    def fingerprint(self) -> str:
        """Size, modification time and content fingerprint (as recorded by the loader)."""
        return export_fingerprint(source_identity(Path(self.path)))


def export_fingerprint(identity: dict) -> str:
    """One string for an export's identity (``size``, ``mtime_ns``, content ``fingerprint``)."""
    return f"{identity['fingerprint']}-{identity['size']}-{identity['mtime_ns']}"


def sample_marker(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.sample")


def mark_sample(path: str | os.PathLike) -> None:
    """Record that ``path`` is the demo export, as it is now (its content fingerprint, after earlier ones)."""
    from recsys_assets.core.atomic import atomic_write_bytes

    kept = sorted(sample_fingerprints(path))[-20:]
    text = "\n".join([*kept, source_identity(Path(path))["fingerprint"]]) + "\n"
    atomic_write_bytes(sample_marker(path), text.encode())


def sample_fingerprints(path: str | os.PathLike) -> set[str]:
    """The content fingerprints of the demo exports written at ``path`` (none without a marker)."""
    try:
        return set(sample_marker(path).read_text().split())
    except OSError:
        return set()


def is_sample_export(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a demo export written by ``recsys sample`` and unchanged since."""
    try:
        return source_identity(Path(path))["fingerprint"] in sample_fingerprints(path)
    except OSError:
        return False


def content_key(fingerprint: str) -> str:
    """An export fingerprint without its modification time: the same bytes give the same key."""
    return fingerprint.rsplit("-", 1)[0]
