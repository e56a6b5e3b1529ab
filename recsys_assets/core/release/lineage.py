"""Whether a candidate and the published model come from one export lineage, and what that makes comparable.

Three answers (:class:`Lineage`), by the share of ids the two have in common (of the smaller set of raw ids,
so a grown or a cut-down export of the same data keeps its lineage):

* ``same``: users and movies overlap. The candidate never trains on the published model's held-back
  pairs (they are removed from its data, whatever the new export says of them), and both are scored
  on that set with its recorded ratings (``rating_evidence.py``, ``ranking_evidence.py``).
* ``rekeyed``: the movies overlap but the users do not (an export whose user ids were renumbered, or
  replaced). Users cannot be matched, movies can: both models fold the held-back users in from half of
  their held-back ratings and are scored on the other half. "Nothing comparable" never means "publish".
* ``new``: neither overlaps. Nothing can be compared; the candidate goes live only when the operator
  says so (``accept_new_lineage``, ``RECSYS_ACCEPT_NEW_LINEAGE=1``) or when the published model was
  trained on the generated demo sample, and the decision says which.
"""

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from recsys_assets.core.heldback import EvaluationPlan, data_fingerprint, plan_evaluation

MIN_OVERLAP = 0.5  # shared share of the user ids and of the movie ids for the same lineage


@dataclass(frozen=True)
class Lineage:
    """How the candidate's ids relate to the published model's (``first``: nothing is published)."""

    kind: str  # first | same | rekeyed | new
    user_share: float = 1.0
    movie_share: float = 1.0
    published_sample: bool = False  # the published model was trained on the generated demo sample

    @property
    def comparable(self) -> bool:
        return self.kind in ("same", "rekeyed")

    def describe(self) -> str:
        shares = f"{self.user_share:.0%} of the user ids and {self.movie_share:.0%} of the movie ids shared"
        return {
            "first": "no published model",
            "same": f"the same export lineage ({shares})",
            "rekeyed": f"the same movies under other user ids ({shares}): compared on the movies, the held-back "
            "users folded in",
            "new": f"a different export lineage ({shares}, under {MIN_OVERLAP:.0%})",
        }[self.kind]


def _share(mine: np.ndarray, theirs: np.ndarray) -> float:
    """The share of the smaller id set that the other holds too (1.0 when either is empty)."""
    smaller = min(len(np.unique(mine)), len(np.unique(theirs)))
    return len(np.intersect1d(mine, theirs)) / smaller if smaller else 1.0


def lineage(users, movies, published_users, published_movies, *, published_sample: bool = False) -> Lineage:
    """The :class:`Lineage` of a candidate with raw ids ``users``/``movies`` against the published ones."""
    user_share, movie_share = _share(users, published_users), _share(movies, published_movies)
    if min(user_share, movie_share) >= MIN_OVERLAP:
        kind = "same"
    elif movie_share >= MIN_OVERLAP:
        kind = "rekeyed"
    else:
        kind = "new"
    if published_sample:  # the generated demo is replaced by whatever comes next: nothing to compare it with
        kind = "new"
    return Lineage(kind, user_share, movie_share, published_sample)


def plan_against(
    train: pd.DataFrame, val: pd.DataFrame, users, movies, published, *, published_sample: bool = False
) -> tuple[EvaluationPlan, Lineage]:
    """The candidate's :class:`EvaluationPlan` against a published model (None: nothing published), and its
    :class:`Lineage`. ``users``/``movies``: the candidate's ``IdMapping``s; ``published``: anything with
    ``users``, ``movies`` (``IdMapping``) and ``heldback``."""
    fingerprint = data_fingerprint(train, val)
    if published is None:
        return replace(plan_evaluation(train, val, None), fingerprint=fingerprint), Lineage("first")
    found = lineage(users.ids, movies.ids, published.users.ids, published.movies.ids, published_sample=published_sample)
    plan = plan_evaluation(train, val, published.heldback if found.comparable else None)
    return replace(plan, fingerprint=fingerprint), found


def fold_in_halves(users: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two masks over held-back ratings (raw user ids ``users``): per user, a seeded half to fold the user in
    from and the other half to score; users with fewer than 2 ratings are left out of both."""
    order = np.random.default_rng(seed).permutation(len(users))
    position = np.empty(len(users), np.int64)
    sorted_users = users[order]
    by_user = np.argsort(sorted_users, kind="stable")
    ranks = np.empty(len(users), np.int64)
    grouped = sorted_users[by_user]
    starts = np.r_[0, np.flatnonzero(grouped[1:] != grouped[:-1]) + 1]
    counts = np.diff(np.r_[starts, len(users)])
    ranks[by_user] = np.arange(len(users)) - np.repeat(starts, counts)
    position[order] = ranks
    count = np.zeros(len(users), np.int64)
    count[order[by_user]] = np.repeat(counts, counts)
    usable = count >= 2
    fold = usable & (position % 2 == 0)
    return fold, usable & ~fold
