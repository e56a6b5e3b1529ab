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
3. **The pair rule.** The rating and ranking models of one data set go live
   together or not at all.  A candidate whose partner's live file comes from
   other data is *staged* (``staged/<name>``, with its decision); when the
   partner of the same data (same fingerprint) arrives, both are recorded and
   then both switched, or, if either was rejected, neither changes.  A model
   whose partner is absent or already of the same data is published alone.
   ``Recommender.load`` refuses a live pair of different fingerprints.
   The publish lock is a local file lock: on executors that run the two steps
   on different machines, a step looks for the partner's staged entry again
   after writing its own, so two steps that finish at once still meet (at
   worst both publish the same pair, as two recorded versions).
"""

import contextlib
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recsys_assets.core.artifact_store import ArtifactStore
from recsys_assets.core.model_history import ModelHistory, Version, publish_lock
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


PARTNERS = {"recommendation_model.pth": "ranking_model.pth", "ranking_model.pth": "recommendation_model.pth"}
STAGED = "staged"  # candidates waiting for the other model of the same data
ABSENT = "absent"  # live_fingerprint: no live file


class PublishError(RuntimeError):
    """A candidate could not be recorded or switched live; the published file is unchanged."""


@dataclass(frozen=True)
class Candidate:
    """A trained model ready to be published as ``name`` in the store."""

    name: str  # the live file, e.g. recommendation_model.pth
    save: Callable[[Path], object]  # writes the model file to a local path
    validate: Callable[[Path], object]  # loads it back with the full validation; raises ValueError
    record: dict  # what the version's JSON keeps: metrics, config, data size, promotion
    fingerprint: str = ""  # of the data it was trained on; "" = published alone, whatever its partner holds

    @property
    def rejected_name(self) -> str:
        return f"{Path(self.name).stem}.rejected{Path(self.name).suffix}"


@dataclass(frozen=True)
class Outcome:
    """Where the candidate went: published as ``version``, staged for its partner, or kept as rejected."""

    published: bool
    name: str  # the file's name in the store: the live file, the staged one or the rejected one
    version: str | None = None
    note: str = ""  # what the pair rule did, when it did anything


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
    """Publish ``candidate`` (record first, then switch) when ``publish``, else keep it as rejected; with a
    ``fingerprint``, the rating and ranking models of one data set go live together or not at all."""
    with publish_lock(work_folder), tempfile.TemporaryDirectory(prefix="recsys-publish-") as folder:
        local = Path(folder) / candidate.name
        candidate.save(local)
        if publish:
            candidate.validate(local)
        try:
            return _release(store, candidate, local, publish, keep)
        except OSError as exc:
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            raise PublishError(
                f"{candidate.name} could not be published: {exc.strerror or exc}{where}; "
                "the published model is unchanged"
            ) from None


def _release(store: ArtifactStore, candidate: Candidate, local: Path, publish: bool, keep: int) -> Outcome:
    partner = PARTNERS.get(candidate.name) if candidate.fingerprint else None
    if partner is None:
        return _alone(store, candidate, local, publish, keep)
    staged = _staged(store, partner, candidate.fingerprint)
    if staged is not None:
        return _together(store, candidate, local, publish, staged, keep)
    if live_fingerprint(store, partner) in (ABSENT, candidate.fingerprint):
        return _alone(store, candidate, local, publish, keep)
    store.put(local, f"{STAGED}/{candidate.name}")
    entry = {"fingerprint": candidate.fingerprint, "publish": publish, "record": candidate.record}
    store.write_bytes(f"{STAGED}/{Path(candidate.name).stem}.json", json.dumps(entry, default=str).encode())
    staged = _staged(store, partner, candidate.fingerprint)  # staged meanwhile by a step on another machine
    if staged is not None:
        _unstage(store, candidate.name)
        return _together(store, candidate, local, publish, staged, keep)
    if not publish:
        store.put(local, candidate.rejected_name)
        return Outcome(False, candidate.rejected_name, note=f"the {partner} of this data cannot go live")
    return Outcome(
        False,
        f"{STAGED}/{candidate.name}",
        note=f"staged: it goes live with the {partner} of the same data, when that one passes too",
    )


def _alone(store: ArtifactStore, candidate: Candidate, local: Path, publish: bool, keep: int) -> Outcome:
    if not publish:
        store.put(local, candidate.rejected_name)
        return Outcome(False, candidate.rejected_name)
    version = ModelHistory(store, candidate.name, keep=keep).publish(local, _with_fingerprint(candidate))
    return Outcome(True, candidate.name, version.name)


def _together(store: ArtifactStore, candidate: Candidate, local: Path, publish: bool, staged: dict, keep: int):
    """The partner was staged from the same data: both go live (records first, then both switches), or neither."""
    partner = PARTNERS[candidate.name]
    with store.read(f"{STAGED}/{partner}") as kept:
        partner_local = local.with_name(partner)
        shutil.copyfile(kept, partner_local)
    _unstage(store, partner)
    if not (publish and staged["publish"]):
        store.put(local, candidate.rejected_name)
        if staged["publish"]:
            store.put(partner_local, f"{Path(partner).stem}.rejected{Path(partner).suffix}")
        return Outcome(
            False,
            candidate.rejected_name,
            note=f"neither model goes live: {'this one' if not publish else f'the {partner} of this data'} "
            "was rejected",
        )
    histories = [ModelHistory(store, name, keep=keep) for name in (candidate.name, partner)]
    names = [h.next_name() for h in histories]
    records = [_with_fingerprint(candidate), {**staged["record"], "data_fingerprint": candidate.fingerprint}]
    versions = [
        h.record_file(path, {**record, "pair": {"file": other_name, "version": other}}, name)
        for h, path, record, name, other_name, other in zip(
            histories, (local, partner_local), records, names, (partner, candidate.name), names[::-1], strict=True
        )
    ]
    for history, path in zip(histories, (local, partner_local), strict=True):
        history.switch(path)
        history.prune()
    return Outcome(
        True,
        candidate.name,
        versions[0].name,
        note=f"published together with the {partner} of the same data ({versions[1].name})",
    )


def _with_fingerprint(candidate: Candidate) -> dict:
    return (
        {**candidate.record, "data_fingerprint": candidate.fingerprint} if candidate.fingerprint else candidate.record
    )


def _staged(store: ArtifactStore, name: str, fingerprint: str) -> dict | None:
    """The staged entry of ``name`` trained on the data ``fingerprint``, or None (absent, stale or damaged)."""
    entry_name = f"{STAGED}/{Path(name).stem}.json"
    if not (store.exists(entry_name) and store.exists(f"{STAGED}/{name}")):
        return None
    try:
        entry = json.loads(store.read_bytes(entry_name))
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) and entry.get("fingerprint") == fingerprint else None


def _unstage(store: ArtifactStore, name: str) -> None:
    store.remove(f"{STAGED}/{Path(name).stem}.json")
    store.remove(f"{STAGED}/{name}")


def live_fingerprint(store: ArtifactStore, name: str) -> str | None:
    """The data fingerprint of the live ``name`` (from its kept version's record): ``ABSENT`` when there is no
    live file, None when it is not a kept version or its record predates fingerprints."""
    if not store.exists(name):
        return ABSENT
    history = ModelHistory(store, name)
    versions = history.versions()
    current = history.current(versions)
    record = next((v.record for v in versions if v.name == current), {})
    return record.get("data_fingerprint") or None


def rollback(store: ArtifactStore, name: str, version: str | None, validators: dict) -> list[tuple[str, Version]]:
    """Restore kept version ``version`` of ``name`` (None: the one before the live one), and the partner's
    version of the same data when the live partner comes from other data; each file's sha256 and full
    validation are checked before either switches. ``validators``: file name -> validation function."""
    history = ModelHistory(store, name, validate=validators[name])
    chosen = history.choose(version)
    restores = [(history, chosen)]
    fingerprint, partner = chosen.record.get("data_fingerprint"), PARTNERS[name]
    if fingerprint and live_fingerprint(store, partner) not in (ABSENT, fingerprint):
        other = ModelHistory(store, partner, validate=validators[partner])
        match = next((v for v in other.versions() if v.record.get("data_fingerprint") == fingerprint), None)
        if match is None:
            raise ValueError(
                f"{name} {chosen.name} was trained on other data than the live {partner}, and no kept version of "
                f"{partner} comes from its data; nothing restored"
            )
        restores.append((other, match))
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(h.store.read(f"{h.folder}/{v.name}.pth")) for h, v in restores]
        for (h, v), local in zip(restores, files, strict=True):
            h.verify(v, local)
        for (h, _), local in zip(restores, files, strict=True):
            h.switch(local)
    return [(h.name, v) for h, v in restores]
