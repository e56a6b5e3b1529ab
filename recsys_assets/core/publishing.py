"""The one publish path of both models: candidate, current, policy -> decision, then record-then-switch.

Both model assets (``defs/training.py``, ``defs/ranking.py``) go through here:

1. :func:`judge`: the promotion decision (``core/promotion.py``'s rule) from the
   candidate's data size, the published model's (``None``: nothing published),
   the evidence both were scored on, and whether the two share an export lineage.
2. :func:`release`: a rejected candidate is written to ``<name>.rejected.pth``
   for inspection and nothing published changes.  An accepted one is written to
   a local temporary file, validated in full (the same check as loading it),
   then recorded as ``models/<name>/vNNNN.pth`` + ``vNNNN.json`` (sha256 included)
   and only then switched live, atomically, all under the publish lock that
   ``recsys rollback`` takes too.  Any failure before the switch (a full disk,
   a folder that cannot be written) raises :class:`PublishError` with one line
   and leaves the live file as it was.
"""

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recsys_assets.core.artifact_store import ArtifactStore
from recsys_assets.core.model_history import ModelHistory, publish_lock
from recsys_assets.core.promotion import DataSize, Evidence, Promotion, PromotionPolicy, decide


def work_folder_for(data_dir: str, work_dir: str = "") -> Path:
    """The local folder for checkpoints and locks: ``work_dir``, else ``data_dir`` when it is local, else a
    folder under the temp dir named after ``data_dir`` (the pipeline and the CLI lock the same files)."""
    if work_dir:
        return Path(work_dir)
    store = ArtifactStore(data_dir)
    if store.is_local:
        return Path(store.root)
    return Path(tempfile.gettempdir()) / f"recsys-work-{hashlib.sha256(data_dir.encode()).hexdigest()[:12]}"


class PublishError(RuntimeError):
    """A candidate could not be recorded or switched live; the published file is unchanged."""


@dataclass(frozen=True)
class Candidate:
    """A trained model ready to be published as ``name`` in the store."""

    name: str  # the live file, e.g. recommendation_model.pth
    save: Callable[[Path], object]  # writes the model file to a local path
    validate: Callable[[Path], object]  # loads it back with the full validation; raises ValueError
    record: dict  # what the version's JSON keeps: metrics, config, data size, promotion

    @property
    def rejected_name(self) -> str:
        return f"{Path(self.name).stem}.rejected{Path(self.name).suffix}"


@dataclass(frozen=True)
class Outcome:
    """Where the candidate went: published as ``version``, or kept as a rejected file."""

    published: bool
    location: str  # the file's URL
    version: str | None = None


def judge(
    size: DataSize,
    current: DataSize | None,
    evidence: list[Evidence],
    policy: PromotionPolicy,
    *,
    unrelated: str | None = None,
) -> Promotion:
    """The promotion decision: may this candidate replace the published model?"""
    return decide(size, current, evidence, policy, unrelated=unrelated)


def release(
    store: ArtifactStore, candidate: Candidate, publish: bool, *, keep: int, work_folder: str | Path
) -> Outcome:
    """Publish ``candidate`` (record first, then switch) when ``publish``, else keep it as rejected."""
    if not publish:
        with store.write(candidate.rejected_name) as tmp:
            candidate.save(tmp)
        return Outcome(False, store.url(candidate.rejected_name))
    history = ModelHistory(store, candidate.name, keep=keep, validate=candidate.validate)
    with publish_lock(work_folder), tempfile.TemporaryDirectory(prefix="recsys-publish-") as folder:
        local = Path(folder) / candidate.name
        candidate.save(local)
        candidate.validate(local)
        try:
            version = history.publish(local, candidate.record)
        except OSError as exc:
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            raise PublishError(
                f"{candidate.name} could not be published: {exc.strerror or exc}{where}; "
                "the published model is unchanged"
            ) from None
    return Outcome(True, store.url(candidate.name), version.name)
