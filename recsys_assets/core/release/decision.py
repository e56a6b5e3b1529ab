"""The promotion decision: may a candidate replace the published model? (Part of the one release rule,
with ``gates.py``'s rules on the candidate alone.)

Applied to the rating model and the ranking model alike:

* **No shrinking data.** The candidate's users, movies and ratings must each be
  at least ``min_data_ratio`` of the published model's (default 0.5): a small
  valid export (a test file, a partial dump) cannot replace a model trained on
  the full catalogue.
* **No worse on evidence the candidate cannot poison.** Both models are scored
  on the published model's *held-back* ratings (``core/heldback.py``), which no
  published fit trained on, and on the candidate's validation ratings that the
  published model never saw (the "fresh" ratings); for a re-keyed export both fold
  the held-back users in (``lineage.py``).  The candidate is refused as worse when,
  on any of them, it is worse by more than the tolerance *and* by more than
  ``noise_z`` standard errors of the paired per-rating (per-user for NDCG) gap.
  The tolerances are relative to the published model's figure (``rmse_tolerance``
  0.01: 1% of its RMSE; ``ndcg_tolerance`` 0.05: 5% of its NDCG@10): a 9% drop of
  NDCG is not noise, however small the figure.  The fresh ratings are chosen by the
  candidate's own export and score two different held-out fits with different masks, so
  they weigh less: there the candidate is refused only when its gap, less ``noise_z``
  standard errors, exceeds an absolute ``fresh_rmse_tolerance`` (0.01) or
  ``fresh_ndcg_tolerance`` (0.02).  Evidence with fewer than
  ``min_fresh_ratings`` ratings is not used (the decision says so).
* **Lineage.** Nothing comparable never means "publish": a candidate of a new
  export lineage (``lineage.py``) goes live only when the operator accepts new
  lineages (``accept_new_lineage``, ``RECSYS_ACCEPT_NEW_LINEAGE=1``) or when the
  published model came from the generated demo sample, and the decision says which.

``force`` (the asset's ``force_publish`` or ``RECSYS_FORCE_PUBLISH=1``)
publishes anyway, and the decision records that it was forced.
"""

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from recsys_assets.core.release.lineage import Lineage


@dataclass(frozen=True)
class DataSize:
    """How much data a model was trained on."""

    users: int
    movies: int
    ratings: int

    @classmethod
    def from_dict(cls, values: dict) -> "DataSize | None":
        """From a model file's recorded sizes, or None when the file predates them."""
        try:
            return cls(int(values["n_users"]), int(values["n_movies"]), int(values["n_ratings"]))
        except (KeyError, TypeError, ValueError):
            return None

    def to_dict(self) -> dict[str, int]:
        return {"n_users": self.users, "n_movies": self.movies, "n_ratings": self.ratings}


@dataclass(frozen=True)
class PromotionPolicy:
    """The promotion rule's settings (see the module docstring)."""

    min_data_ratio: float = 0.5
    rmse_tolerance: float = 0.01  # of the published model's RMSE
    ndcg_tolerance: float = 0.05  # of the published model's NDCG@10
    min_fresh_ratings: int = 100
    noise_z: float = 2.0
    force: bool = False
    accept_new_lineage: bool = False
    fresh_rmse_tolerance: float = 0.01  # absolute, on the fresh ratings (see the module docstring)
    fresh_ndcg_tolerance: float = 0.02

    def validate(self) -> "PromotionPolicy":
        for name in (
            "min_data_ratio",
            "rmse_tolerance",
            "ndcg_tolerance",
            "noise_z",
            "fresh_rmse_tolerance",
            "fresh_ndcg_tolerance",
        ):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.min_data_ratio > 1:
            raise ValueError(f"min_data_ratio must be at most 1, got {self.min_data_ratio}")
        if self.min_fresh_ratings < 1:
            raise ValueError(f"min_fresh_ratings must be at least 1, got {self.min_fresh_ratings}")
        return self


FRESH = "fresh validation ratings it never trained on"


@dataclass(frozen=True)
class Evidence:
    """Both models' score on the same fresh validation ratings (``lower_is_better`` for errors)."""

    metric: str
    candidate: float
    current: float
    fresh_ratings: int
    lower_is_better: bool
    on: str = FRESH
    standard_error: float = 0.0  # of the paired gap: how much of ``worse_by`` is noise

    @property
    def chosen_by_candidate(self) -> bool:
        """Whether the candidate's own export chose these ratings (the fresh ones)."""
        return self.on == FRESH

    @property
    def worse_by(self) -> float:
        """How much worse the candidate is (negative: better)."""
        gap = self.candidate - self.current
        return gap if self.lower_is_better else -gap

    def describe(self) -> str:
        return (
            f"{self.metric} {self.candidate:.4f} against the published model's {self.current:.4f} "
            f"(+/- {self.standard_error:.4f}) on {self.fresh_ratings:,} {self.on}"
        )


@dataclass(frozen=True)
class Promotion:
    """Whether the candidate may replace the published model, and why."""

    publish: bool
    reasons: list[str] = field(default_factory=list)  # why not (empty when it may)
    notes: list[str] = field(default_factory=list)  # what was compared, or why nothing was
    forced: bool = False

    def describe(self) -> str:
        text = "; ".join(self.reasons + self.notes) or "no published model to compare with"
        return text if self.publish else f"{text} ({FORCE_HINT})"


FORCE_HINT = "force_publish or RECSYS_FORCE_PUBLISH=1 publishes anyway"


def decide(
    candidate: DataSize,
    current: DataSize | None,
    evidence: "Evidence | list[Evidence] | None",
    policy: PromotionPolicy,
    *,
    lineage: "Lineage | None" = None,
) -> Promotion:
    """The promotion decision for a candidate (``current`` None: nothing is published yet); ``lineage``
    (default: the same) says what the candidate's ids share with the published model's."""
    if current is None:
        return Promotion(True, notes=["no published model to compare with"])
    reasons = _shrinkage(candidate, current, policy)
    if lineage is not None and lineage.kind == "new":
        accepted, note = _new_lineage(lineage, policy)
        reasons += [] if accepted else [note]
        notes = [note] if accepted else []
    else:
        listed = [] if evidence is None else evidence if isinstance(evidence, list) else [evidence]
        worse, notes = _compare(listed, policy)
        reasons += worse
        if lineage is not None and lineage.kind == "rekeyed":
            notes.insert(0, lineage.describe())
    if reasons and policy.force:
        return Promotion(True, notes=[f"forced despite: {r}" for r in reasons] + notes, forced=True)
    return Promotion(not reasons, reasons, notes)


def _new_lineage(lineage: "Lineage", policy: PromotionPolicy) -> tuple[bool, str]:
    """Whether a candidate of a new export lineage may go live, and the sentence that says why."""
    what = f"{lineage.describe()}; no score can be compared"
    if lineage.published_sample:
        return True, f"{what}; published: it replaces the generated demo sample"
    if policy.accept_new_lineage:
        return True, f"{what}; published: the operator accepts new lineages (accept_new_lineage)"
    return False, (
        f"{what}; not published unless the operator accepts it (accept_new_lineage or RECSYS_ACCEPT_NEW_LINEAGE=1)"
    )


def _shrinkage(candidate: DataSize, current: DataSize, policy: PromotionPolicy) -> list[str]:
    reasons = []
    for name in ("users", "movies", "ratings"):
        before, now = getattr(current, name), getattr(candidate, name)
        if now < policy.min_data_ratio * before:
            reasons.append(
                f"{now:,} {name} against the published model's {before:,} "
                f"(below {policy.min_data_ratio:.0%}: the data shrank)"
            )
    return reasons


def _compare(evidence: list[Evidence], policy: PromotionPolicy) -> tuple[list[str], list[str]]:
    reasons, notes = [], []
    for item in evidence:
        if item.fresh_ratings < policy.min_fresh_ratings or not math.isfinite(item.candidate - item.current):
            notes.append(
                f"{item.metric} not compared: {item.fresh_ratings:,} {item.on} "
                f"(at least {policy.min_fresh_ratings:,} needed)"
            )
            continue
        why = _worse(item, policy)
        if why:
            reasons.append(f"worse than the published model: {item.describe()} ({why})")
        else:
            notes.append(item.describe())
    if not evidence:
        notes.append("not compared with the published model: no evidence")
    return reasons, notes


def _worse(item: Evidence, policy: PromotionPolicy) -> str | None:
    """Why ``item`` refuses the candidate, or None (see the module docstring for the two rules)."""
    noise = policy.noise_z * item.standard_error
    if item.chosen_by_candidate:
        tolerance = policy.fresh_rmse_tolerance if item.lower_is_better else policy.fresh_ndcg_tolerance
        if item.worse_by - noise > tolerance:
            return f"worse by {item.worse_by:.4f}: more than {tolerance:g} beyond {policy.noise_z:g} standard errors"
        return None
    share = policy.rmse_tolerance if item.lower_is_better else policy.ndcg_tolerance
    if item.worse_by > share * abs(item.current) and item.worse_by > noise:
        return f"worse by {item.worse_by:.4f}: more than {share:.0%} of its figure and than {policy.noise_z:g} standard errors"
    return None


def rmse_evidence(
    candidate_pred: np.ndarray,
    current_pred: np.ndarray,
    ratings: np.ndarray,
    fresh: np.ndarray,
    *,
    metric: str = "val RMSE",
    on: str = FRESH,
) -> Evidence:
    """RMSE of both models' (clamped) predictions on the ``fresh`` ratings."""
    n = int(fresh.sum())
    mine, theirs = (
        (np.asarray(pred, np.float64)[fresh] - ratings[fresh]) ** 2 for pred in (candidate_pred, current_pred)
    )
    a, b = (float(np.sqrt(np.mean(sq))) if n else float("nan") for sq in (mine, theirs))
    # the RMSE gap's standard error from the paired squared errors (delta method: d RMSE = d MSE / 2 RMSE)
    se = float(np.std(mine - theirs, ddof=1) / np.sqrt(n) / max(a + b, 1e-9)) if n > 1 else float("inf")
    return Evidence(metric, a, b, n, lower_is_better=True, on=on, standard_error=se)
