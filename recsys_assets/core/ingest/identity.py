"""The identity of an export file: its size, modification time and fingerprints of some of its bytes.

The checkpoint binds itself to it (:mod:`~recsys_assets.core.ingest.checkpoint`), and the export's
fingerprint, which the sensor compares, is made of it (``core/exports.py``).
"""

import hashlib
from pathlib import Path

_FINGERPRINT_BYTES = 1 << 20
_SAMPLES = 16  # blocks of _SAMPLE_BYTES sampled between the first and last MiB
_SAMPLE_BYTES = 1 << 16


def _sample_offsets(size: int) -> list[int]:
    """Where the :data:`_SAMPLES` blocks of ``sampled`` lie: evenly between the first and last MiB."""
    inner = size - 2 * _FINGERPRINT_BYTES
    if inner <= 0:
        return []
    return [_FINGERPRINT_BYTES + inner * k // (_SAMPLES + 1) for k in range(1, _SAMPLES + 1)]


def source_identity(path: Path, *, sample: bool = False) -> dict:
    """Size, modification time and a fingerprint of the first and last MiB.

    ``sample``: also ``sampled``, a fingerprint of :data:`_SAMPLES` blocks of
    64 KiB spread evenly over the rest of the file (1 MiB more to read).  The
    checkpoint compares it too, so an in-place edit that keeps the size and the
    modification time is noticed when it touches the first or last MiB or a
    sampled block.  An edit that touches none of them is not noticed: such an
    edit needs a tool that deliberately restores the modification time; remove
    the checkpoint after one.  (``fingerprint`` alone is what the export's
    fingerprint, compared by the sensor, is made of.)
    """
    st = path.stat()
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(st.st_size).encode())
    identity = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    with open(path, "rb") as f:
        digest.update(f.read(_FINGERPRINT_BYTES))
        if st.st_size > _FINGERPRINT_BYTES:
            f.seek(max(_FINGERPRINT_BYTES, st.st_size - _FINGERPRINT_BYTES))
            digest.update(f.read())
        identity["fingerprint"] = digest.hexdigest()
        if sample:
            sampled = hashlib.blake2b(digest_size=16)
            for offset in _sample_offsets(st.st_size):
                f.seek(offset)
                sampled.update(f.read(_SAMPLE_BYTES))
            identity["sampled"] = sampled.hexdigest()
    return identity
