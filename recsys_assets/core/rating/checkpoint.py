"""The per-epoch training checkpoint: an interrupted training resumes from its last finished epoch.

The checkpoint is a ``torch.save`` dictionary of tensors and plain values (it
loads with ``weights_only=True``), written atomically after every epoch (one that cannot be written, on
a full disk, is a warning: training goes on without checkpoints).  It is
bound to the data and the settings by a fingerprint: a checkpoint for other
data or other settings, or one that cannot be read, is ignored with a warning
and training starts over.
"""

import errno
import hashlib
import logging
import os
from pathlib import Path

import torch

from recsys_assets.core.atomic import atomic_torch_save

log = logging.getLogger(__name__)
CHECKPOINT_VERSION = 1
# settings that do not change what an epoch computes: a resumed training may change them
_RUN_SETTINGS = ("epochs", "patience", "min_delta", "eval_batch_size", "kernel", "cuda_graphs", "refit")


def data_fingerprint(train, val, n_users: int, n_movies: int, config: dict) -> str:
    """A digest of the splits (``MovieRatingDataset``s), the sizes and the settings that shape the weights."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((n_users, n_movies, len(train), len(val))).encode())
    digest.update(repr(sorted((k, v) for k, v in config.items() if k not in _RUN_SETTINGS)).encode())
    for t in (train.users, train.movies, train.ratings, val.users, val.movies, val.ratings):
        digest.update(t.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def read_checkpoint(path: str | os.PathLike, fingerprint: str, device) -> dict | None:
    """The saved training state when ``path`` holds one for this fingerprint, else None (with a warning)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # a corrupt checkpoint must not block training
        log.warning("training checkpoint %s unreadable (%s); starting over", path, exc)
        return None
    if (
        not isinstance(saved, dict)
        or saved.get("version") != CHECKPOINT_VERSION
        or saved.get("fingerprint") != fingerprint
    ):
        log.warning("training checkpoint %s is for other data or settings; starting over", path)
        return None
    return saved


def write_checkpoint(path: str | os.PathLike, fingerprint: str, state: dict) -> Path | None:
    """Save ``state`` (epoch, weights, optimizer, history, best epoch, random states) atomically.

    Returns the path for the next epoch's checkpoint, or None when this one could not be written (a full
    disk, a read-only folder): the checkpoint only saves time, so training goes on without one, after a
    one-line warning naming the folder; the temporary file is removed and the last checkpoint written
    stays as it was (a resume starts from it)."""
    path = Path(path)
    try:
        atomic_torch_save({"version": CHECKPOINT_VERSION, "fingerprint": fingerprint, **state}, path)
    except OSError as exc:
        log.warning(
            "training checkpoint not written in %s: %s; training goes on without checkpoints",
            path.parent,
            _why(exc),
        )
        return None
    return path


def _why(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "the disk is full (ENOSPC)"
    if exc.errno == errno.EDQUOT:
        return "the disk quota is used up (EDQUOT)"
    name = errno.errorcode.get(exc.errno or 0, "")
    return f"{exc.strerror or exc} ({name})" if name else str(exc.strerror or exc)
