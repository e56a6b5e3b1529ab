"""The last published models, kept so that a bad release can be rolled back.

Every published model file is also copied to ``models/<name>/vNNNN.pth`` in the
artifact store (``data/models/recommendation_model/v0003.pth``), with a JSON
record beside it (``v0003.json``): when it was published, its metrics, its
config, its data size and the export fingerprint it was trained from.  The
newest ``keep`` versions stay (default 5).

:meth:`ModelHistory.rollback` copies a kept version back over the published
file, atomically (the store's temp-then-rename publish), so readers see either
the old file or the restored one.  ``recsys models`` and ``recsys rollback``
call these.
"""

import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from recsys_assets.core.artifact_store import ArtifactStore

FOLDER = "models"
_VERSION = re.compile(r"^v(\d{4,})\.json$")


@dataclass(frozen=True)
class Version:
    """One kept model: its version name and its record (metrics, config, data, fingerprint)."""

    name: str
    record: dict

    @property
    def number(self) -> int:
        return int(self.name[1:])


def file_digest(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ModelHistory:
    """The kept versions of one published file (``name``, e.g. ``recommendation_model.pth``) in ``store``."""

    def __init__(self, store: ArtifactStore, name: str, *, keep: int = 5):
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.store, self.name, self.keep = store, name, keep
        self.folder = f"{FOLDER}/{Path(name).stem}"

    def versions(self) -> list[Version]:
        """Kept versions, newest first."""
        found = []
        for entry in self.store.listdir(self.folder) if self.store.exists(self.folder) else []:
            match = _VERSION.match(Path(entry).name)
            if match and self.store.exists(f"{self.folder}/v{match.group(1)}.pth"):
                record = json.loads(self.store.read_bytes(f"{self.folder}/{Path(entry).name}"))
                found.append(Version(f"v{match.group(1)}", record))
        return sorted(found, key=lambda v: v.number, reverse=True)

    def record(self, record: dict) -> Version:
        """Keep a copy of the published file as the next version, with ``record``; prune old versions."""
        versions = self.versions()
        name = f"v{(versions[0].number + 1) if versions else 1:04d}"
        with self.store.read(self.name) as published:
            full = {
                **record,
                "version": name,
                "file": self.name,
                "sha256": file_digest(published),
                "published_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            self.store.put(published, f"{self.folder}/{name}.pth")
        self.store.write_bytes(f"{self.folder}/{name}.json", json.dumps(full, indent=2, default=str).encode())
        for old in versions[self.keep - 1 :]:
            self.store.remove(f"{self.folder}/{old.name}.pth")
            self.store.remove(f"{self.folder}/{old.name}.json")
        return Version(name, full)

    def current(self, versions: list[Version] | None = None) -> str | None:
        """The version whose file is the published one now, or None (``versions``: already listed)."""
        if not self.store.exists(self.name):
            return None
        with self.store.read(self.name) as published:
            digest = file_digest(published)
        listed = self.versions() if versions is None else versions
        return next((v.name for v in listed if v.record.get("sha256") == digest), None)

    def rollback(self, version: str | None = None) -> Version:
        """Publish a kept version again (default: the one before the current). Returns it."""
        versions = self.versions()
        if not versions:
            raise ValueError(f"no kept versions of {self.name} in {self.store.url(self.folder)}")
        if version is None:
            current = self.current(versions)
            older = [v for v in versions if current is not None and v.number < int(current[1:])]
            if not older:
                raise ValueError(
                    f"no version older than the published one ({current or 'not a kept version'}); "
                    f"name one of: {', '.join(v.name for v in versions)}"
                )
            chosen = older[0]
        else:
            wanted = version if version.startswith("v") else f"v{int(version):04d}" if version.isdigit() else version
            chosen = next((v for v in versions if v.name == wanted), None)
            if chosen is None:
                raise ValueError(f"no version {version!r} of {self.name}; kept: {', '.join(v.name for v in versions)}")
        with self.store.read(f"{self.folder}/{chosen.name}.pth") as kept:
            self.store.put(kept, self.name)
        return chosen
