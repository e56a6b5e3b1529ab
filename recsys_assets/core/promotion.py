"""Model promotion: a new model replaces the published one only when it is at least as good and its data did not shrink.

Two rules, applied to the rating model and the ranking model alike:

* **No shrinking data.** The candidate's users, movies and ratings must each be
  at least ``min_data_ratio`` of the published model's (default 0.5): a small
  valid export (a test file, a partial dump) cannot replace a model trained on
  the full catalogue.
* **No worse on evidence the candidate cannot poison.** Both models are scored
  on the published model's *held-back* ratings (``core/heldback.py``): ratings
  of the published model's own export that no published fit trained on, stored
  with its version, read with their real ratings.  A candidate trained on
  inverted or re-labelled ratings cannot choose that evidence.  Both are also
  scored on the candidate's validation ratings that the published model never
  saw in training (the "fresh" ratings).  On each, the candidate must not be
  worse than the published model by more than the tolerance (``rmse_tolerance``
  stars of RMSE, ``ndcg_tolerance`` of NDCG@10) beyond noise: ``noise_z``
  standard errors of the paired per-rating (per-user for NDCG) gap.  Evidence with fewer than
  ``min_fresh_ratings`` ratings is not used (the decision says so).
* **Different export lineage.** When the candidate's and the published model's
  id spaces hardly overlap (the demo export replaced by real data), nothing
  comparable is published: no score is compared, the decision says so, and only
  the data-size rule applies.

``force`` (the asset's ``force_publish`` or ``RECSYS_FORCE_PUBLISH=1``)
publishes anyway, and the decision records that it was forced.
"""

import math
from dataclasses import dataclass, field

import numpy as np


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
    rmse_tolerance: float = 0.01
    ndcg_tolerance: float = 0.02
    min_fresh_ratings: int = 100
    noise_z: float = 2.0
    force: bool = False

    def validate(self) -> "PromotionPolicy":
        for name in ("min_data_ratio", "rmse_tolerance", "ndcg_tolerance", "noise_z"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.min_data_ratio > 1:
            raise ValueError(f"min_data_ratio must be at most 1, got {self.min_data_ratio}")
        if self.min_fresh_ratings < 1:
            raise ValueError(f"min_fresh_ratings must be at least 1, got {self.min_fresh_ratings}")
        return self


@dataclass(frozen=True)
class Evidence:
    """Both models' score on the same fresh validation ratings (``lower_is_better`` for errors)."""

    metric: str
    candidate: float
    current: float
    fresh_ratings: int
    lower_is_better: bool
    on: str = "fresh validation ratings it never trained on"
    standard_error: float = 0.0  # of the paired gap: how much of ``worse_by`` is noise

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
    unrelated: str | None = None,
) -> Promotion:
    """The promotion decision for a candidate (``current`` None: nothing is published yet).

    ``unrelated``: why the published model is of a different export lineage (then no score is compared)."""
    if current is None:
        return Promotion(True, notes=["no published model to compare with"])
    reasons = _shrinkage(candidate, current, policy)
    if unrelated is not None:
        notes = [f"nothing comparable published: {unrelated}; no score compared"]
    else:
        listed = [] if evidence is None else evidence if isinstance(evidence, list) else [evidence]
        worse, notes = _compare(listed, policy)
        reasons += worse
    if reasons and policy.force:
        return Promotion(True, notes=[f"forced despite: {r}" for r in reasons] + notes, forced=True)
    return Promotion(not reasons, reasons, notes)


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
        tolerance = policy.rmse_tolerance if item.lower_is_better else policy.ndcg_tolerance
        if item.worse_by - policy.noise_z * item.standard_error > tolerance:
            reasons.append(
                f"worse than the published model: {item.describe()} "
                f"(tolerance {tolerance:g} beyond {policy.noise_z:g} standard errors)"
            )
        else:
            notes.append(item.describe())
    if not evidence:
        notes.append("not compared with the published model: no evidence")
    return reasons, notes


def rmse_evidence(
    candidate_pred: np.ndarray,
    current_pred: np.ndarray,
    ratings: np.ndarray,
    fresh: np.ndarray,
    *,
    metric: str = "val RMSE",
    on: str = "fresh validation ratings it never trained on",
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
