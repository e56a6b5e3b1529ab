"""The one file lock of the project, and its one "busy" error.

POSIX advisory locks (``flock``) on a lock file: two runs that would write the
same artifact, or two loads of one checkpoint, cannot interleave.  The second
fails at once with :class:`BusyError` and a clear message, and can simply be
re-run.  The kernel drops the lock when its holder dies, so a killed run never
leaves a stale lock behind.  Without ``fcntl`` (Windows) locking is a no-op.
"""

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks
    fcntl = None


class BusyError(RuntimeError):
    """Another process holds the lock on a shared artifact or checkpoint."""


class FileLock:
    """An exclusive, non-blocking advisory lock on ``path``.

    ``busy_message`` is the text of the :class:`BusyError` raised when another
    process holds the lock (default: ``"<what> is being written by another run ..."``).
    """

    def __init__(self, path: str | os.PathLike, what: str, *, busy_message: str | None = None):
        self.path = Path(path)
        self.what = what
        self.busy_message = busy_message
        self._handle = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def acquire(self) -> "FileLock":
        if self._handle is not None:
            raise RuntimeError(f"lock {self.path} is already held by this object")
        if fcntl is None:  # pragma: no cover
            self._handle = True
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held open for as long as the lock is
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            message = self.busy_message or (
                f"{self.what} is being written by another run (lock {self.path}); re-run when it has finished"
            )
            raise BusyError(message) from None
        self._handle = handle
        return self

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is None or handle is True:
            return
        try:
            if fcntl is not None:  # a real handle implies fcntl (acquire takes it only then)
                fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            handle.close()

    def __enter__(self) -> "FileLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` or fail at once, naming ``what`` is busy."""
    with FileLock(path, what):
        yield
