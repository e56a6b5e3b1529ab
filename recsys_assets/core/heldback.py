"""The held-back evaluation set: ratings no published fit trains on, kept with the published model.

Promotion needs evidence the candidate cannot choose.  Scoring both models on
the candidate's own validation split lets a hostile export decide the test
(inverted ratings on the same pairs, permuted user ids).  So every published
model carries a held-back set from its own export:

* :func:`plan_evaluation` draws it from the validation split (a seeded
  ``share`` of it, at most ``cap`` ratings).  The reported figures still use the
  whole validation split (the held-out fit never trains on it); the published
  refit trains on training + validation *minus* the held-back ratings, so no
  published fit has seen them.
* The set is written into both model files as tensors of raw user ids, raw
  movie ids and ratings (``heldback_*``, read with ``weights_only=True``), so it
  travels with every kept version and is covered by the version's sha256.
* A candidate whose ids overlap the published model's (:func:`lineage`) never
  trains on the published model's held-back pairs: they are removed from its
  training and validation ratings before anything is fitted, whatever rating the
  new export gives them.  Both models are then scored on the published set with
  its recorded ratings, raw ids mapped through each model's own mappings.
* Whether a candidate shares the published model's lineage, and what it is then judged on, is the
  release's question (``core/release/lineage.py``); this module only holds the data.
"""

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

SHARE = 0.25  # of the validation split
CAP = 20_000  # ratings at most
KEYS = ("heldback_user_ids", "heldback_movie_ids", "heldback_ratings")


@dataclass(frozen=True)
class HeldBack:
    """Raw user ids, raw movie ids and their ratings, which no published fit trained on."""

    users: np.ndarray  # int64
    movies: np.ndarray  # int64
    ratings: np.ndarray  # float32

    def __len__(self) -> int:
        return len(self.ratings)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> "HeldBack":
        return cls(
            frame["user_id"].to_numpy(np.int64),
            frame["movie_id"].to_numpy(np.int64),
            frame["rating"].to_numpy(np.float32),
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """The file's keys -> arrays (the model files store them as tensors)."""
        return dict(zip(KEYS, (self.users, self.movies, self.ratings), strict=True))

    @classmethod
    def from_payload(cls, payload: dict) -> "HeldBack | None":
        """From a model file's tensors; None when the file has none (older files). ValueError when malformed."""
        if KEYS[0] not in payload:
            return None
        users, movies, ratings = (
            np.asarray(payload[k].numpy() if hasattr(payload[k], "numpy") else payload[k]) for k in KEYS
        )
        if not (users.ndim == movies.ndim == ratings.ndim == 1 and len(users) == len(movies) == len(ratings)):
            raise ValueError("the held-back ids and ratings differ in length")
        if not np.isfinite(ratings).all():
            raise ValueError("the held-back ratings hold NaN or infinite values")
        return cls(users.astype(np.int64), movies.astype(np.int64), ratings.astype(np.float32))


@dataclass(frozen=True)
class EvaluationPlan:
    """What a candidate is fitted and scored on, given the published model's held-back set."""

    train: pd.DataFrame  # training ratings, the published held-back pairs removed
    val: pd.DataFrame  # validation ratings (early stopping, reported figures), likewise
    refit_val: pd.DataFrame  # the validation ratings the published refit adds: val minus ``heldback``
    heldback: HeldBack  # this candidate's own held-back set, stored with it
    excluded: int  # ratings removed because the published model holds their pairs back
    fingerprint: str = ""  # of the ratings both models are built from (the pair rule, core/release/registry.py)


def pair_mask(frame: pd.DataFrame, users: np.ndarray, movies: np.ndarray) -> np.ndarray:
    """Which rows of ``frame`` have a (user_id, movie_id) pair among ``users``/``movies``."""
    if not len(users) or not len(frame):
        return np.zeros(len(frame), bool)
    rows = pd.MultiIndex.from_arrays([frame["user_id"].to_numpy(np.int64), frame["movie_id"].to_numpy(np.int64)])
    return np.asarray(rows.isin(pd.MultiIndex.from_arrays([users, movies])))


def plan_evaluation(
    train: pd.DataFrame,
    val: pd.DataFrame,
    published: HeldBack | None,
    *,
    share: float = SHARE,
    cap: int = CAP,
    seed: int = 0,
) -> EvaluationPlan:
    """Remove ``published``'s pairs (None: nothing to remove), then hold back a seeded share of validation."""
    excluded = 0
    if published is not None and len(published):
        drop_train, drop_val = (pair_mask(f, published.users, published.movies) for f in (train, val))
        excluded = int(drop_train.sum() + drop_val.sum())
        train, val = _rows(train, ~drop_train), _rows(val, ~drop_val)
    n = min(int(len(val) * share), cap)
    held = np.zeros(len(val), bool)
    held[np.random.default_rng(seed).permutation(len(val))[:n]] = True
    return EvaluationPlan(train, val, _rows(val, ~held), HeldBack.from_frame(_rows(val, held)), excluded)


def _rows(frame: pd.DataFrame, mask: np.ndarray) -> pd.DataFrame:
    return frame.take(np.flatnonzero(mask)).reset_index(drop=True)


def data_fingerprint(train: pd.DataFrame, val: pd.DataFrame) -> str:
    """A short hash of the training and validation ratings: equal for the two models of one run's data."""
    digest = hashlib.sha256()
    for frame in (train, val):
        digest.update(len(frame).to_bytes(8, "little"))
        for column, dtype in (("user_id", np.int64), ("movie_id", np.int64), ("rating", np.float32)):
            digest.update(np.ascontiguousarray(frame[column].to_numpy(dtype)).tobytes())
    return digest.hexdigest()[:16]
