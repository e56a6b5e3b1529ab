"""``ArtifactStore``: the pipeline's files under a root that is a local folder or an fsspec URL.

Tables, the model file, plots and checkpoints are written through :meth:`ArtifactStore.write`,
which hands out a local temporary file and publishes it in one step when the block ends:

* local root: ``os.replace`` of a temp file beside the target (:func:`~recsys_assets.core.atomic.atomic_path`);
* any other fsspec filesystem (``s3://``, ``gs://``, ``az://``, ``memory://``...): upload to a
  temporary key beside the target, then move it into place.  On object stores a key appears
  whole or not at all, so a reader sees the previous version or the new one, never a part.

A block that raises publishes nothing and leaves the previous version.  Reads go through
:meth:`read`, which yields a local path (a downloaded copy for remote roots).  No pickle is
read from the store: callers load Parquet, JSON, Arrow IPC and ``torch.load(weights_only=True)``.

:meth:`push_dir` / :meth:`pull_dir` mirror a local working folder (a checkpoint written
incrementally on local disk) to and from the store, so that a step restarted on another
machine resumes from it.
"""

import contextlib
import errno
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

from recsys_assets.core.atomic import atomic_path

_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


@contextlib.contextmanager
def _names_target(target: Path) -> Iterator[None]:
    """A full disk while writing ``target`` is an ``OSError`` naming ``target``: neither the temporary file
    beside it nor the local file being copied (``shutil.copyfile`` names its source)."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _DISK_FULL:
            raise
        raise OSError(exc.errno, exc.strerror, str(target)) from exc


class ArtifactStore:
    """Files under ``root`` (a path or an fsspec URL such as ``s3://bucket/recsys``)."""

    def __init__(self, root: str | os.PathLike, **storage_options):
        self.root_url = str(root).rstrip("/") or "/"
        self.fs, path = fsspec.core.url_to_fs(self.root_url, **storage_options)
        self.is_local = isinstance(self.fs, LocalFileSystem)
        self.root = path.rstrip("/")
        self._pushed: dict[str, tuple] = {}

    def __repr__(self) -> str:
        return f"ArtifactStore({self.root_url!r})"

    # --- names --------------------------------------------------------------------------------
    def path(self, name: str) -> str:
        """The filesystem path of ``name`` (relative, with ``/``) under the root."""
        if name.startswith("/") or ".." in Path(name).parts:
            raise ValueError(f"artifact names are relative and stay under the root, got {name!r}")
        return f"{self.root}/{name}"

    def url(self, name: str) -> str:
        """A location to show people: a local absolute path, or the full URL."""
        if self.is_local:
            return str(Path(self.path(name)).resolve())
        self.path(name)  # validates the name
        return f"{self.root_url}/{name}"

    def local_path(self, name: str) -> Path:
        """The file itself, for local roots only."""
        if not self.is_local:
            raise ValueError(f"{self.root_url} is not a local folder")
        return Path(self.path(name))

    # --- reading ------------------------------------------------------------------------------
    def exists(self, name: str) -> bool:
        return self.fs.exists(self.path(name))

    def size(self, name: str) -> int:
        return int(self.fs.size(self.path(name)))

    def listdir(self, prefix: str) -> list[str]:
        """Names of the files under ``prefix`` (recursively), relative to ``prefix``."""
        base = self.path(prefix).rstrip("/")
        if not self.fs.exists(base):
            return []
        strip = len(self.fs._strip_protocol(base).rstrip("/")) + 1
        return sorted(self.fs._strip_protocol(p)[strip:] for p in self.fs.find(base))

    @contextlib.contextmanager
    def read(self, name: str) -> Iterator[Path]:
        """A local path holding ``name``'s bytes for the duration of the block."""
        if self.is_local:
            path = self.local_path(name)
            if not path.exists():
                raise FileNotFoundError(f"{path} not found")
            yield path
            return
        if not self.exists(name):
            raise FileNotFoundError(f"{self.url(name)} not found")
        with tempfile.TemporaryDirectory(prefix="recsys-read-") as tmp:
            local = Path(tmp) / Path(name).name
            self.fs.get_file(self.path(name), str(local))
            yield local

    def read_bytes(self, name: str) -> bytes:
        with self.fs.open(self.path(name), "rb") as f:
            return f.read()

    # --- writing ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def write(self, name: str) -> Iterator[Path]:
        """Write to the yielded local path; ``name`` is published atomically when the block ends."""
        if self.is_local:
            target = self.local_path(name)
            with _names_target(target), atomic_path(target) as tmp:
                yield tmp
            return
        with tempfile.TemporaryDirectory(prefix="recsys-write-") as tmp:
            local = Path(tmp) / Path(name).name
            yield local
            if not local.exists():
                raise FileNotFoundError(f"nothing was written for {name}")
            self.put(local, name)

    def put(self, local: str | os.PathLike, name: str) -> None:
        """Publish a local file as ``name`` (upload to a temporary key, then move into place)."""
        if self.is_local:
            target = self.local_path(name)
            with _names_target(target), atomic_path(target) as tmp:
                shutil.copyfile(local, tmp)
            return
        target = self.path(name)
        staging = f"{target}.tmp-{uuid.uuid4().hex[:12]}"
        parent = target.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        try:
            self.fs.put_file(str(local), staging)
            self.fs.mv(staging, target)
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm(staging)
            raise

    def write_bytes(self, name: str, data: bytes) -> None:
        with self.write(name) as tmp:
            Path(tmp).write_bytes(data)

    def remove(self, name: str) -> None:
        """Delete ``name`` (a file or a folder); missing is fine."""
        path = self.path(name)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=self.fs.isdir(path))
        self._pushed = {k: v for k, v in self._pushed.items() if not k.startswith(name)}

    # --- mirroring a local working folder -----------------------------------------------------
    def push_dir(
        self,
        local_dir: str | os.PathLike,
        prefix: str,
        last: Callable[[str], bool] = lambda name: name.endswith(".json"),
        skip: Callable[[str], bool] = lambda name: name.endswith((".lock", ".tmp")) or "/." in f"/{name}",
    ) -> int:
        """Upload the files of ``local_dir`` that changed since the last push under ``prefix``;
        files for which ``last`` is true (manifests) go after the others, so a manifest never
        names a part that is not there yet. Returns the number of files uploaded. Symbolic links are
        never followed: a link planted in the folder must not upload a file from elsewhere."""
        local_dir = Path(local_dir)
        if not local_dir.exists():
            return 0
        found = (p for p in local_dir.rglob("*") if p.is_file() and not p.is_symlink())
        files = sorted((p.relative_to(local_dir).as_posix(), p) for p in found)
        files = [(rel, p) for rel, p in files if not skip(rel)]
        files.sort(key=lambda item: last(item[0]))
        uploaded = 0
        for rel, p in files:
            st = p.stat()
            key, signature = f"{prefix}/{rel}", (st.st_size, st.st_mtime_ns)
            if self._pushed.get(key) == signature:
                continue
            self.put(p, key)
            self._pushed[key] = signature
            uploaded += 1
        return uploaded

    def pull_dir(self, prefix: str, local_dir: str | os.PathLike) -> int:
        """Download every file under ``prefix`` into ``local_dir``; returns how many."""
        names = self.listdir(prefix)
        for rel in names:
            target = Path(local_dir) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                self.fs.get_file(self.path(f"{prefix}/{rel}"), str(tmp))
        return len(names)
