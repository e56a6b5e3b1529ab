"""Which errors of a load a retry can fix.

A retry helps when the cause may pass: a network share that hiccups (``EIO``,
``ESTALE``, a timeout), an export replaced while it was read (``ENOENT``).  It
cannot help, and only delays a clear failure, when the cause stays: the export
itself (:class:`ExportError`: damaged, empty, of the wrong format, over a cap),
a setting (``ValueError``), or the machine (a full disk, a read-only folder, a
permission, a file where a folder should be, a symbolic link loop, a name too
long, a file too large).
"""

import errno

from recsys_assets.core.formats import ExportError
from recsys_assets.core.locks import BusyError

PERMANENT_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.EISDIR,
        errno.ENOTDIR,
        errno.EEXIST,
        errno.ELOOP,
        errno.ENAMETOOLONG,
        errno.EFBIG,
        errno.ENXIO,
    }
)


def no_retry_can_fix(exc: BaseException) -> bool:
    """Whether ``exc`` would happen again on a retry of the same load (see the module docstring)."""
    if isinstance(exc, ExportError | BusyError | ValueError | TypeError):  # UnicodeError is a ValueError
        return True
    return isinstance(exc, OSError) and exc.errno in PERMANENT_ERRNOS


def one_line(exc: BaseException) -> str:
    """The error as one line: the OS's words and the file for an ``OSError``, else its message."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__
