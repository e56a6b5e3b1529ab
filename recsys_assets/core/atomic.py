"""Atomic file publishing: write to a temporary sibling, then rename it over the target.

The one temp-file-then-rename helper of the project.  A reader sees either the
old file or the complete new one, never a partial write; if the writer raises
the temporary file is removed, and if the process dies it is left with a
``.tmp`` suffix and a leading dot, which nothing reads.
"""

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

_replace = os.replace  # the one rename; tests wrap it to see who publishes through here
_UMASK = os.umask(0)
os.umask(_UMASK)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # a temporary name that is a symbolic link is never written through


def fixed_tmp_path(target: str | os.PathLike) -> Path:
    """The fixed temporary sibling ``.<name>.tmp`` used with ``fixed_tmp=True``."""
    target = Path(target)
    return target.with_name(f".{target.name}.tmp")


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, *, fixed_tmp: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; when the block succeeds, rename it over ``target``.

    ``fixed_tmp``: use the fixed name :func:`fixed_tmp_path` instead of a unique
    ``mkstemp`` name.  Cheaper (no extra file creation and ``chmod``), and safe
    only when one writer at a time can write ``target``, for example the
    holder of a lock.
    """
    target = Path(target)
    if fixed_tmp:
        tmp = fixed_tmp_path(target)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        os.chmod(tmp_name, 0o666 & ~_UMASK)  # mkstemp creates 0600; publish with the usual permissions
        tmp = Path(tmp_name)
    try:
        yield tmp
        _replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(target: str | os.PathLike, data: bytes, *, fixed_tmp: bool = False) -> Path:
    """Replace ``target`` with ``data`` atomically (see :func:`atomic_path`).

    The blocks are allocated before the write: ext4 then does not flush the
    file on the rename over the old one (``auto_da_alloc``), which costs a
    millisecond or two for the small files (manifests) written often.
    """
    with atomic_path(target, fixed_tmp=fixed_tmp) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NOFOLLOW, 0o666)
        try:
            if hasattr(os, "posix_fallocate") and data:
                with contextlib.suppress(OSError):
                    os.posix_fallocate(fd, 0, len(data))
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:  # os.write names no file: name the one being written (a full disk)
            exc.filename = exc.filename or str(target)
            raise
        finally:
            os.close(fd)
    return Path(target)


def atomic_torch_save(obj: object, target: str | os.PathLike) -> Path:
    """``torch.save`` ``obj`` to ``target`` atomically.

    The file is serialized in memory and written with plain ``os.write`` calls, so a full disk is an
    ``OSError`` (``ENOSPC``) naming the file, not the zip writer's "unexpected pos" error."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(target, buffer.getbuffer())
