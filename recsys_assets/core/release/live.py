"""The live pair: one pointer file naming the live version of each model, replaced atomically.

``<data_dir>/live.json`` is the switch. A publish records the versions first (``history.py``), then
replaces this one file (the store's temp-then-rename), then refreshes the convenience copies
``recommendation_model.pth`` and ``ranking_model.pth``. Every reader (the CLI, ``recsys serve``, the
assets, the release itself) resolves a live model through :func:`resolve`, so a crash at any point
leaves the old pair or the new pair live, never one of each; :func:`repair` brings the copies back in
line (each publish and rollback runs it first, under the publish lock).

A data folder written before the pointer existed has none: the copies are then the live files.
"""

import json
import time

from recsys_assets.core.artifact_store import ArtifactStore

POINTER = "live.json"
FOLDER = "models"


def version_path(name: str, version: str) -> str:
    """Where kept version ``version`` of the live file ``name`` lies (``models/<stem>/vNNNN.pth``)."""
    stem = name.rsplit(".", 1)[0]
    return f"{FOLDER}/{stem}/{version}.pth"


def read(store: ArtifactStore) -> dict[str, dict]:
    """The pointer: live file name -> ``{"version", "sha256"}``; empty when there is none or it is unreadable."""
    if not store.exists(POINTER):
        return {}
    try:
        pointer = json.loads(store.read_bytes(POINTER))
    except (OSError, ValueError):
        return {}
    models = pointer.get("models") if isinstance(pointer, dict) else None
    if not isinstance(models, dict):
        return {}
    return {name: entry for name, entry in models.items() if isinstance(entry, dict) and entry.get("version")}


def write(store: ArtifactStore, changes: dict[str, dict]) -> dict[str, dict]:
    """Switch: the pointer with ``changes`` (name -> ``{"version", "sha256"}``) applied, in one atomic replace."""
    models = {**read(store), **changes}
    pointer = {"models": models, "switched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    store.write_bytes(POINTER, json.dumps(pointer, indent=2, sort_keys=True).encode())
    return models


def resolve(store: ArtifactStore, name: str) -> str:
    """The store path to read for the live ``name``: its version named by the pointer, else the file itself."""
    entry = read(store).get(name)
    if entry is not None:
        path = version_path(name, entry["version"])
        if store.exists(path):
            return path
    return name


def exists(store: ArtifactStore, name: str) -> bool:
    """Whether a live ``name`` exists (through the pointer, or the file itself)."""
    return store.exists(resolve(store, name))


def live_version(store: ArtifactStore, name: str) -> str | None:
    """The version the pointer names for ``name``, or None (no pointer, or not named)."""
    entry = read(store).get(name)
    return entry["version"] if entry is not None else None
