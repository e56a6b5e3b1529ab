"""The published models' versions: recorded before they go live, verified before they come back.

Every published model file is kept as ``models/<name>/vNNNN.pth`` in the
artifact store (``data/models/recommendation_model/v0003.pth``), with a JSON
record beside it (``v0003.json``): when it was published, its metrics, its
config, its data size, its sha256 and the data fingerprint it was trained from.
The newest ``keep`` versions stay (default 5).

Order of a publish (``registry.py``): the version file and its JSON are
written first, then the live pointer (``live.py``) is switched atomically,
then the convenience copy of the live file is refreshed.  A failure before
the switch (a full disk, a folder that cannot be written) leaves the live
pair as it was; a failure after it leaves the new pair live.

The registry is read defensively: a damaged or unreadable ``vNNNN.json``, or a
record without its ``.pth``, is named in :attr:`Scan.problems` and skipped, and
the intact versions still list and roll back.  :meth:`ModelHistory.verify`
checks a kept file's sha256 against its record and runs the file's full
validation (``validate``); ``registry.rollback`` (the one rollback) runs it
before anything switches.
"""

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from recsys_assets.core.artifact_store import ArtifactStore
from recsys_assets.core.locks import FileLock
from recsys_assets.core.release import live

FOLDER = live.FOLDER
PUBLISH_LOCK = "publish.lock"
_ENTRY = re.compile(r"^v(\d{1,9})\.(json|pth)$")
_WANTED = re.compile(r"^v?0*(\d{1,9})$")


@dataclass(frozen=True)
class Version:
    """One kept model: its version name and its record (metrics, config, data, fingerprint)."""

    name: str
    record: dict

    @property
    def number(self) -> int:
        return int(self.name[1:])


@dataclass(frozen=True)
class Scan:
    """What the registry folder holds: intact versions (newest first) and what is wrong with the rest."""

    versions: list[Version]
    problems: list[str] = field(default_factory=list)
    highest: int = 0  # the highest version number of any entry, damaged ones included


def file_digest(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def version_name(text: str) -> str:
    """``v3``, ``3``, ``v0003`` -> ``v0003``; anything else is a ValueError."""
    match = _WANTED.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a version (write it as v3, 3 or v0003)")
    return f"v{int(match.group(1)):04d}"


def publish_lock(work_folder: str | Path, what: str = "the published models") -> FileLock:
    """The lock every publish and rollback of the model files holds (``<work folder>/locks/publish.lock``)."""
    return FileLock(Path(work_folder) / "locks" / PUBLISH_LOCK, what)


class ModelHistory:
    """The kept versions of one published file (``name``, e.g. ``recommendation_model.pth``) in ``store``.

    ``validate(path)`` raises (e.g. ``ModelFileError``) when a file is not a valid model of this kind."""

    def __init__(
        self, store: ArtifactStore, name: str, *, keep: int = 5, validate: Callable[[Path], object] | None = None
    ):
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.store, self.name, self.keep, self.validate = store, name, keep, validate
        self.folder = f"{FOLDER}/{Path(name).stem}"

    def scan(self) -> Scan:
        """Every entry of the folder: intact versions, and one line per damaged or orphaned entry."""
        entries = self.store.listdir(self.folder) if self.store.exists(self.folder) else []
        found: dict[int, set[str]] = {}
        for entry in entries:
            match = _ENTRY.match(Path(entry).name)
            if match and "/" not in entry:
                found.setdefault(int(match.group(1)), set()).add(match.group(2))
        versions, problems = [], []
        for number in sorted(found, reverse=True):
            name = f"v{number:04d}"
            version, problem = self._read(name, found[number])
            if version is not None:
                versions.append(version)
            if problem:
                problems.append(problem)
        return Scan(versions, problems, max(found, default=0))

    def _read(self, name: str, kinds: set[str]) -> tuple[Version | None, str | None]:
        where = self.store.url(f"{self.folder}/{name}")
        if "json" not in kinds:
            return None, f"{where}.pth has no record ({name}.json is missing): skipped"
        if "pth" not in kinds:
            return None, f"{where}.json names a model file that is missing ({name}.pth): skipped"
        try:
            record = json.loads(self.store.read_bytes(f"{self.folder}/{name}.json"))
        except (OSError, ValueError) as exc:
            return None, f"{where}.json is damaged ({type(exc).__name__}: {str(exc)[:80]}): skipped"
        if not isinstance(record, dict):
            return None, f"{where}.json is damaged (not a JSON object): skipped"
        return Version(name, record), None

    def versions(self) -> list[Version]:
        """Intact kept versions, newest first."""
        return self.scan().versions

    def next_name(self) -> str:
        """The next version's name (after every entry, damaged ones included: no number is reused)."""
        return f"v{self.scan().highest + 1:04d}"

    def record_file(self, local: str | Path, record: dict, name: str) -> Version:
        """Keep ``local`` as version ``name``: the file first, then its JSON record (with the file's sha256)."""
        full = {
            **record,
            "version": name,
            "file": self.name,
            "sha256": file_digest(local),
            "published_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        self.store.put(local, f"{self.folder}/{name}.pth")
        self.store.write_bytes(f"{self.folder}/{name}.json", json.dumps(full, indent=2, default=str).encode())
        return Version(name, full)

    def refresh_copy(self, local: str | Path) -> None:
        """Make ``local`` the convenience copy of the live file (atomic; the pointer already names it)."""
        self.store.put(local, self.name)

    def prune(self) -> None:
        """Drop the intact versions beyond the newest ``keep`` (never the live one)."""
        pointed = live.live_version(self.store, self.name)
        for old in self.versions()[self.keep :]:
            if old.name == pointed:
                continue
            self.store.remove(f"{self.folder}/{old.name}.pth")
            self.store.remove(f"{self.folder}/{old.name}.json")

    def current(self, versions: list[Version] | None = None) -> str | None:
        """The live version (the pointer's, else the one whose file is the live copy), or None
        (``versions``: already listed)."""
        listed = self.versions() if versions is None else versions
        pointed = live.live_version(self.store, self.name)
        if pointed is not None and any(v.name == pointed for v in listed):
            return pointed
        if not self.store.exists(self.name):
            return None
        with self.store.read(self.name) as published:
            digest = file_digest(published)
        return next((v.name for v in listed if v.record.get("sha256") == digest), None)

    def choose(self, version: str | None = None) -> Version:
        """The kept version ``version`` names (v3, 3, v0003), or the one before the current (None)."""
        scan = self.scan()
        versions = scan.versions
        damaged = f" (damaged: {'; '.join(scan.problems)})" if scan.problems else ""
        if not versions:
            raise ValueError(f"no intact kept versions of {self.name} in {self.store.url(self.folder)}{damaged}")
        if version is None:
            current = self.current(versions)
            older = [v for v in versions if current is not None and v.number < int(current[1:])]
            if not older:
                raise ValueError(
                    f"no version older than the published one ({current or 'not a kept version'}); "
                    f"name one of: {', '.join(v.name for v in versions)}"
                )
            return older[0]
        wanted = version_name(version)
        chosen = next((v for v in versions if v.name == wanted), None)
        if chosen is None:
            raise ValueError(
                f"no intact version {version!r} of {self.name}; kept: {', '.join(v.name for v in versions)}{damaged}"
            )
        return chosen

    def verify(self, chosen: Version, local: Path) -> None:
        """Raise ValueError unless ``local`` (the kept file of ``chosen``) matches its sha256 and validates."""
        expected = chosen.record.get("sha256")
        where = self.store.url(f"{self.folder}/{chosen.name}.pth")
        if not expected:
            raise ValueError(f"{where} has no sha256 in its record; not restored")
        if file_digest(local) != expected:
            raise ValueError(f"{where} does not match the sha256 of its record (damaged or replaced); not restored")
        if self.validate is not None:
            try:
                self.validate(local)
            except ValueError as exc:
                first = (str(exc).strip().splitlines() or [""])[0][:300]
                raise ValueError(f"{where} fails validation ({first}); not restored") from None
