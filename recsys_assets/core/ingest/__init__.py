"""The ingest package: reading a ratings export into one row per data line.

* :mod:`.framing` - reading in blocks and cutting the file into whole lines;
* :mod:`.parse` - the row schema, the fast Arrow path and the exact line-by-line path;
* :mod:`.checkpoint` - the :class:`CheckpointStore` (manifest, parts, lock, high-water mark);
* :mod:`.parts` - the checkpoint's Arrow IPC part files; :mod:`.identity` - an export file's identity;
* :mod:`.loader` - :class:`MovieDataLoader`, composing the three for one load;
* :mod:`.errors` - which errors of a load a retry can fix.
"""

from recsys_assets.core.formats import ExportError
from recsys_assets.core.ingest.checkpoint import (
    MANIFEST_VERSION,
    CheckpointPathError,
    CheckpointStore,
    confined_checkpoint_path,
)
from recsys_assets.core.ingest.errors import no_retry_can_fix, one_line
from recsys_assets.core.ingest.framing import ExportTooLargeError, GzipLimits, read_lines
from recsys_assets.core.ingest.identity import source_identity
from recsys_assets.core.ingest.loader import ExportLayout, LoadStats, MovieDataLoader
from recsys_assets.core.ingest.parse import (
    RAW_SCHEMA,
    Parsed,
    parse_clean,
    parse_segment,
    table_to_frame,
)
from recsys_assets.core.locks import BusyError

CheckpointBusyError = BusyError  # the one "busy" error; the old name, kept for callers

__all__ = [
    "MANIFEST_VERSION",
    "RAW_SCHEMA",
    "BusyError",
    "CheckpointBusyError",
    "CheckpointPathError",
    "CheckpointStore",
    "ExportError",
    "ExportLayout",
    "ExportTooLargeError",
    "GzipLimits",
    "LoadStats",
    "MovieDataLoader",
    "Parsed",
    "confined_checkpoint_path",
    "no_retry_can_fix",
    "one_line",
    "parse_clean",
    "parse_segment",
    "read_lines",
    "source_identity",
    "table_to_frame",
]
