"""The published models as served by ``recsys serve`` (``recsys_assets/api.py``, the HTTP layer),
reloaded when a new version is promoted.

:class:`ModelServer` holds one fully loaded :class:`Recommender` at a time. A background thread looks
at both published files (their size, modification time and inode: one ``stat`` each) every
``reload_interval`` seconds; when they changed and then stayed the same for one more look (a promotion
replaces the two files one after the other), it loads the pair into a new ``Recommender`` and only
then replaces the reference, so a request in flight keeps the object it started with and no request
sees a half-loaded model. With the pair it computes every known user's top 10 (:class:`KnownLists`), so the
API's most common request is a lookup. A load that fails (the pair is mid-swap, a file is being replaced) or a pair
that changed while it loaded keeps the old model and is retried at the next look; ``last_error`` and
``last_error_at`` say why and when (one line, without PyTorch's advice to load the file unsafely), and stay
set until a pair loads, so a server answering from an older pair can say so (``/health``: ``stale``).
"""

import contextlib
import re
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from recsys_assets.core.artifact_store import ArtifactStore
from recsys_assets.core.presentation import clean_text
from recsys_assets.core.recommender import Recommender
from recsys_assets.core.release import live
from recsys_assets.core.release.candidate import RANKING_FILE, RATING_FILE
from recsys_assets.core.release.history import ModelHistory

KNOWN_K = 10  # the list length answered from the lists computed when a pair loads (the API's default k)
MAX_KNOWN_USERS = 200_000  # above this many users the lists are computed per request instead


@dataclass(frozen=True)
class KnownLists:
    """Every known user's top ``KNOWN_K`` by the ranking model, computed once when the pair loads (the same
    rows ``Recommender.recommend`` gives, so a request only looks its user up)."""

    user_ids: np.ndarray  # sorted
    starts: np.ndarray  # each user's first row (len(user_ids) + 1 offsets)
    columns: tuple[np.ndarray, ...]  # rank, movie_id, score, predicted_rating, because_movie_id

    @classmethod
    def of(cls, recommender: Recommender, max_users: int = MAX_KNOWN_USERS) -> "KnownLists | None":
        ranker = recommender.ranker
        if ranker is None or len(ranker.users) > max_users:
            return None
        frame = recommender.recommend_many(ranker.users.ids, k=KNOWN_K)  # ordered by user id, then rank
        user_ids = ranker.users.ids
        counts = np.bincount(np.searchsorted(user_ids, frame["user_id"].to_numpy()), minlength=len(user_ids))
        starts = np.concatenate([[0], np.cumsum(counts)])
        names = ("rank", "movie_id", "score", "predicted_rating", "because_movie_id")
        return cls(np.asarray(user_ids), starts, tuple(frame[name].to_numpy() for name in names))

    def rows(self, user_id: int) -> list[tuple] | None:
        """The user's rows (rank, movie_id, score, predicted_rating, because_movie_id), or None when unknown."""
        at = int(np.searchsorted(self.user_ids, user_id))
        if at >= len(self.user_ids) or self.user_ids[at] != user_id:
            return None
        a, b = self.starts[at], self.starts[at + 1]
        return list(zip(*(column[a:b].tolist() for column in self.columns), strict=True))


@dataclass(frozen=True)
class Loaded:
    """One loaded pair: the recommender, the files' stamp it was loaded from, the kept versions, and the
    known users' lists computed with it (None: computed per request)."""

    recommender: Recommender
    stamp: tuple
    loaded_at: float
    versions: dict = field(default_factory=dict)
    known: KnownLists | None = None


def _stat(store: ArtifactStore, name: str) -> tuple:
    """What changes when ``name`` is replaced: size, modification time and inode (local), else the
    store's own listing fields (size, mtime, ETag)."""
    if store.is_local:
        try:
            st = store.local_path(name).stat()
        except FileNotFoundError:
            return (name, None)
        return (name, st.st_size, st.st_mtime_ns, st.st_ino)
    try:
        info = store.fs.info(store.path(name))
    except FileNotFoundError:
        return (name, None)
    return (name, *(str(info.get(key)) for key in ("size", "mtime", "LastModified", "ETag")))


# PyTorch's advice on a file that weights_only refuses (load it with weights_only=False, or allowlist its
# classes): never relayed, since following it runs whatever code the file holds
_UNSAFE_PREFIX = re.compile(r"Weights only load failed\..*?(?:WeightsUnpickler error:\s*|$)")
_UNSAFE_ADVICE = re.compile(r"(?:Please use `torch\.serialization|Check the documentation of torch\.load).*")
MAX_REASON = 300


def failure_reason(exc: BaseException) -> str:
    """``exc`` as one line for an operator: its type and message, whitespace folded, PyTorch's advice to
    load the file unsafely removed, at most ``MAX_REASON`` characters."""
    text = " ".join(clean_text(re.sub(r"\s", " ", str(exc))).split())
    text = _UNSAFE_PREFIX.sub("refused by the safe loader: ", text)
    text = _UNSAFE_ADVICE.sub("", text).strip()
    at = text.lower().find("weights_only")
    if at >= 0:  # advice in words this does not know: keep the sentences before it
        text = text[: text.rfind(". ", 0, at) + 1] or "refused by the safe loader"
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line if len(line) <= MAX_REASON else line[: MAX_REASON - 3] + "..."


def _kept_versions(store: ArtifactStore) -> dict:
    """The kept version of each published file (``recsys models``' star), best effort."""
    found = {}
    for kind, name in (("rating", RATING_FILE), ("ranking", RANKING_FILE)):
        try:
            found[kind] = ModelHistory(store, name).current()
        except Exception:  # noqa: BLE001 - the version is shown for information only
            found[kind] = None
    return found


class ModelServer:
    """The current :class:`Loaded` pair of ``data_dir`` (a folder or an fsspec URL), swapped whole."""

    def __init__(self, data_dir: str):
        self.store = ArtifactStore(data_dir)
        self.current: Loaded | None = None
        self.last_error: str | None = None  # why the last load failed, until a pair loads
        self.last_error_at: float | None = None  # when (time.time())
        self.reloads = 0
        self._lock = threading.Lock()
        self._last_look: tuple | None = None

    def stamp(self) -> tuple:
        return (_stat(self.store, live.POINTER), _stat(self.store, RATING_FILE), _stat(self.store, RANKING_FILE))

    def refresh(self) -> bool:
        """Load the published pair when it changed since the loaded one and is the same as at the previous
        look (the first load needs no second look); True when a new pair is now served."""
        with self._lock:
            before, previous = self.stamp(), self._last_look
            self._last_look = before
            if self.current is not None and (before == self.current.stamp or before != previous):
                return False
            try:
                recommender = Recommender.from_store(self.store, RATING_FILE)
            except Exception as exc:  # noqa: BLE001 - mid-swap or missing: keep serving the old pair
                return self._failed(failure_reason(exc))
            known = KnownLists.of(recommender)  # before the swap: a request never waits for it
            if self.stamp() != before:  # replaced while it loaded: load again at the next look
                return self._failed("the published files changed while they were loading; retrying")
            self.current = Loaded(recommender, before, time.time(), _kept_versions(self.store), known)
            self.last_error, self.last_error_at, self.reloads = None, None, self.reloads + 1
            return True

    def _failed(self, reason: str) -> bool:
        self.last_error, self.last_error_at = reason, time.time()
        return False

    @contextlib.contextmanager
    def watching(self, interval: float):
        """Refresh every ``interval`` seconds in a daemon thread while the block runs."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval):
                self.refresh()

        thread = threading.Thread(target=loop, name="recsys-model-watcher", daemon=True)
        self.refresh()
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(timeout=interval + 5)
