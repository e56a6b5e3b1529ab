"""The registry: the one publish path and the one rollback of both models, record first, then one switch.

1. :func:`publish`: a rejected candidate is written to ``<name>.rejected.pth``
   for inspection and nothing live changes.  An accepted one is written to a
   local temporary file, validated in full (the same check as loading it),
   recorded as ``models/<name>/vNNNN.pth`` + ``vNNNN.json`` (sha256 included),
   and only then switched live by replacing the pointer ``live.json``
   (``live.py``) in one atomic step; the convenience copies of the live files
   are refreshed after it.  All of it runs under the publish lock that
   :func:`rollback` takes too.  A failure before the switch raises
   :class:`PublishError` with one line and leaves the live pair as it was.
2. **The pair rule.** The rating and ranking models of one data set go live
   together or not at all.  A candidate whose partner's live file comes from
   other data is *staged* (``staged/<name>``, with its decision); when the
   partner of the same data (same fingerprint) arrives, both are recorded and
   switched by one pointer write, or, if either was rejected, neither changes.
   A model whose partner is absent or already of the same data is published alone.
   On executors that run the two steps on different machines, a step looks for the
   partner's staged entry again after writing its own, so two steps that finish at
   once still meet (at worst both publish the same pair, as two recorded versions).
3. **Lineage.** Each version records the export lineage it belongs to (``lineage``)
   and whether it came from the generated demo sample (``sample_export``);
   :func:`rollback` refuses to cross either without ``force``.
"""

import contextlib
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from recsys_assets.core.artifact_store import ArtifactStore
from recsys_assets.core.release import live
from recsys_assets.core.release.candidate import PARTNERS, Candidate, Outcome, rejected_name
from recsys_assets.core.release.history import ModelHistory, Version, file_digest, publish_lock

STAGED = "staged"  # candidates waiting for the other model of the same data
ABSENT = "absent"  # live_fingerprint: no live file


class PublishError(RuntimeError):
    """A candidate could not be recorded or switched live; the published file is unchanged."""


def work_folder_for(data_dir: str, work_dir: str = "") -> Path:
    """The local folder for checkpoints and locks: ``work_dir``, else ``data_dir`` when it is local, else a
    folder under the temp dir named after ``data_dir`` (the pipeline and the CLI lock the same files)."""
    if work_dir:
        return Path(work_dir)
    store = ArtifactStore(data_dir)
    if store.is_local:
        return Path(store.root)
    return Path(tempfile.gettempdir()) / f"recsys-work-{hashlib.sha256(data_dir.encode()).hexdigest()[:12]}"


def publish(
    store: ArtifactStore, candidate: Candidate, accepted: bool, *, keep: int, work_folder: str | Path
) -> Outcome:
    """Publish ``candidate`` (record first, then switch) when ``accepted``, else keep it as rejected; with a
    ``fingerprint``, the rating and ranking models of one data set go live together or not at all."""
    with publish_lock(work_folder), tempfile.TemporaryDirectory(prefix="recsys-publish-") as folder:
        local = Path(folder) / candidate.name
        try:
            candidate.save(local)
            if accepted:
                candidate.validate(local)
            repair(store)
            return _publish(store, candidate, local, accepted, keep)
        except OSError as exc:
            raise PublishError(
                f"{candidate.name} could not be published to {store.url('')}: {exc.strerror or exc}; "
                "the published model is unchanged"
            ) from None


def _publish(store: ArtifactStore, candidate: Candidate, local: Path, accepted: bool, keep: int) -> Outcome:
    partner = PARTNERS.get(candidate.name) if candidate.fingerprint else None
    if partner is None:
        return _alone(store, candidate, local, accepted, keep)
    staged = _staged(store, partner, candidate.fingerprint)
    if staged is not None:
        return _together(store, candidate, local, accepted, staged, keep)
    if live_fingerprint(store, partner) in (ABSENT, candidate.fingerprint):
        return _alone(store, candidate, local, accepted, keep)
    store.put(local, f"{STAGED}/{candidate.name}")
    entry = {"fingerprint": candidate.fingerprint, "publish": accepted, "record": _full_record(store, candidate)}
    store.write_bytes(f"{STAGED}/{Path(candidate.name).stem}.json", json.dumps(entry, default=str).encode())
    staged = _staged(store, partner, candidate.fingerprint)  # staged meanwhile by a step on another machine
    if staged is not None:
        _unstage(store, candidate.name)
        return _together(store, candidate, local, accepted, staged, keep)
    if not accepted:
        store.put(local, candidate.rejected_name)
        return Outcome(False, candidate.rejected_name, note=f"the {partner} of this data cannot go live")
    return Outcome(
        False,
        f"{STAGED}/{candidate.name}",
        note=f"staged: it goes live with the {partner} of the same data, when that one passes too",
    )


def _alone(store: ArtifactStore, candidate: Candidate, local: Path, accepted: bool, keep: int) -> Outcome:
    if not accepted:
        store.put(local, candidate.rejected_name)
        return Outcome(False, candidate.rejected_name)
    history = ModelHistory(store, candidate.name, keep=keep)
    version = history.record_file(local, _full_record(store, candidate), history.next_name())
    _switch(store, [(history, version, local)])
    return Outcome(True, candidate.name, version.name)


def _together(store: ArtifactStore, candidate: Candidate, local: Path, accepted: bool, staged: dict, keep: int):
    """The partner was staged from the same data: both go live (records first, then one switch), or neither."""
    partner = PARTNERS[candidate.name]
    with store.read(f"{STAGED}/{partner}") as kept:
        partner_local = local.with_name(partner)
        shutil.copyfile(kept, partner_local)
    _unstage(store, partner)
    if not (accepted and staged["publish"]):
        store.put(local, candidate.rejected_name)
        if staged["publish"]:
            store.put(partner_local, rejected_name(partner))
        return Outcome(
            False,
            candidate.rejected_name,
            note=f"neither model goes live: {'this one' if not accepted else f'the {partner} of this data'} "
            "was rejected",
        )
    histories = [ModelHistory(store, name, keep=keep) for name in (candidate.name, partner)]
    names = [h.next_name() for h in histories]
    records = [_full_record(store, candidate), {**staged["record"], "data_fingerprint": candidate.fingerprint}]
    versions = [
        h.record_file(path, {**record, "pair": {"file": other_name, "version": other}}, name)
        for h, path, record, name, other_name, other in zip(
            histories, (local, partner_local), records, names, (partner, candidate.name), names[::-1], strict=True
        )
    ]
    _switch(store, list(zip(histories, versions, (local, partner_local), strict=True)))
    return Outcome(
        True,
        candidate.name,
        versions[0].name,
        note=f"published together with the {partner} of the same data ({versions[1].name})",
    )


def _switch(store: ArtifactStore, moves: list[tuple[ModelHistory, Version, Path]]) -> None:
    """The one switch: the pointer names every recorded version at once; then the copies, then pruning."""
    live.write(store, {h.name: {"version": v.name, "sha256": v.record["sha256"]} for h, v, _ in moves})
    for history, _, local in moves:
        history.refresh_copy(local)
        history.prune()


def repair(store: ArtifactStore) -> list[str]:
    """Bring each live copy in line with the pointer (after a crash between the switch and the copies);
    returns the names refreshed."""
    refreshed = []
    for name, entry in live.read(store).items():
        path = live.version_path(name, entry["version"])
        if not store.exists(path):
            continue
        if store.exists(name):
            with store.read(name) as copy:
                if file_digest(copy) == entry.get("sha256"):
                    continue
        with store.read(path) as kept:
            store.put(kept, name)
        refreshed.append(name)
    return refreshed


def _full_record(store: ArtifactStore, candidate: Candidate) -> dict:
    """The version's record: the candidate's, with its data fingerprint and its export lineage."""
    record = dict(candidate.record)
    if candidate.fingerprint:
        record["data_fingerprint"] = candidate.fingerprint
    inherited = None
    if record.get("lineage_kind") in ("same", "rekeyed"):
        inherited = (live_record(store, candidate.name) or {}).get("lineage")
    record["lineage"] = inherited or candidate.fingerprint or record.get("export_fingerprint") or "unknown"
    return record


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


def live_record(store: ArtifactStore, name: str) -> dict | None:
    """The record of the live version of ``name``, or None (nothing live, or not a kept version)."""
    history = ModelHistory(store, name)
    versions = history.versions()
    current = history.current(versions)
    return next((v.record for v in versions if v.name == current), None)


def live_fingerprint(store: ArtifactStore, name: str) -> str | None:
    """The data fingerprint of the live ``name`` (from its kept version's record): ``ABSENT`` when there is no
    live file, None when it is not a kept version or its record predates fingerprints."""
    if not live.exists(store, name):
        return ABSENT
    return (live_record(store, name) or {}).get("data_fingerprint") or None


def crossing(chosen: Version, live_now: dict | None) -> str | None:
    """Why restoring ``chosen`` would cross lineages (the demo sample, or another export), or None."""
    if live_now is None:
        return None
    if chosen.record.get("sample_export") and not live_now.get("sample_export"):
        return f"{chosen.name} was trained on the generated demo sample, the live model on your export"
    mine, theirs = chosen.record.get("lineage"), live_now.get("lineage")
    if mine and theirs and mine != theirs:
        return f"{chosen.name} comes from another export lineage than the live model ({mine[:12]} vs {theirs[:12]})"
    return None


def rollback(
    store: ArtifactStore,
    name: str,
    version: str | None,
    validators: dict,
    *,
    work_folder: str | Path,
    force: bool = False,
) -> list[tuple[str, Version]]:
    """Restore kept version ``version`` of ``name`` (None: the one before the live one), and the partner's
    version of the same data when the live partner comes from other data, under the publish lock; each
    file's sha256 and full validation are checked, then one pointer write switches both. A version from the
    demo sample or another export lineage is refused unless ``force``. ``validators``: file name -> function."""
    with publish_lock(work_folder):
        repair(store)
        history = ModelHistory(store, name, validate=validators[name])
        chosen = history.choose(version)
        why = crossing(chosen, live_record(store, name))
        if why is not None and not force:
            raise ValueError(f"{why}; nothing restored (--force restores it anyway)")
        restores = [(history, chosen)] + _partner_restore(store, name, chosen, validators)
        with contextlib.ExitStack() as stack:
            files = [stack.enter_context(h.store.read(f"{h.folder}/{v.name}.pth")) for h, v in restores]
            for (h, v), local in zip(restores, files, strict=True):
                h.verify(v, local)
            live.write(store, {h.name: {"version": v.name, "sha256": v.record["sha256"]} for h, v in restores})
            for (h, _), local in zip(restores, files, strict=True):
                h.refresh_copy(local)
    return [(h.name, v) for h, v in restores]


def _partner_restore(store: ArtifactStore, name: str, chosen: Version, validators: dict):
    fingerprint, partner = chosen.record.get("data_fingerprint"), PARTNERS[name]
    if not fingerprint or live_fingerprint(store, partner) in (ABSENT, fingerprint):
        return []
    other = ModelHistory(store, partner, validate=validators[partner])
    match = next((v for v in other.versions() if v.record.get("data_fingerprint") == fingerprint), None)
    if match is None:
        raise ValueError(
            f"{name} {chosen.name} was trained on other data than the live {partner}, and no kept version of "
            f"{partner} comes from its data; nothing restored"
        )
    return [(other, match)]
