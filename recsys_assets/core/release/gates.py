"""When a model may go live: the one home of the rule, for the rating model and the ranking model alike.

A candidate goes live when every rule in :data:`RULES` passes for its :class:`Facts` and the promotion
decision (``decision.py``: the data did not shrink, it is not worse than the published model on evidence
it cannot choose, its lineage is comparable or accepted) lets it. A new rule is one function
``Facts -> reason or None`` added to :data:`RULES`; nothing outside this package changes.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from recsys_assets.core.release.decision import Promotion


@dataclass(frozen=True)
class Facts:
    """What a trained candidate shows about itself, before it is compared with the published model."""

    model: str  # "rating" or "ranking"
    finite: bool  # every weight / factor is finite
    metrics: dict[str, float] = field(default_factory=dict)
    baseline: str = ""  # the baseline it must beat ("global mean", "most popular")
    loses_to_baseline: str | None = None  # why it loses to that baseline beyond noise, or None


def finite_weights(facts: Facts) -> str | None:
    return None if facts.finite else "NaN or infinite weights"


def beats_its_baseline(facts: Facts) -> str | None:
    return facts.loses_to_baseline


RULES: list[Callable[[Facts], str | None]] = [finite_weights, beats_its_baseline]


@dataclass(frozen=True)
class Verdict:
    """Whether the candidate goes live, and every reason it does not."""

    publish: bool
    reasons: list[str]
    promotion: Promotion

    @property
    def rejection(self) -> str | None:
        return None if self.publish else "; ".join(self.reasons) or "rejected"


def verdict(facts: Facts, promotion: Promotion) -> Verdict:
    """The candidate's verdict: :data:`RULES` on ``facts``, then the promotion decision."""
    reasons = [reason for rule in RULES if (reason := rule(facts)) is not None]
    if not promotion.publish:
        reasons += promotion.reasons or ["the promotion rule refused it"]
    return Verdict(not reasons, reasons, promotion)


def rating_facts(metrics: dict[str, float], finite: bool) -> Facts:
    """The rating model's facts: it must predict better than the global mean on its validation split."""
    rmse, mean = metrics.get("val_rmse", math.nan), metrics.get("global_mean_rmse", math.nan)
    loses = None if rmse < mean else f"val RMSE {rmse:.4f} is not below the global mean's {mean:.4f}"
    return Facts("rating", finite, metrics, "global mean", loses)


def ranking_facts(metrics: dict[str, float], finite: bool, comparison) -> Facts:
    """The ranking model's facts: it must not lose to most popular beyond noise (``comparison``, from
    ``core/ranking/evaluate.py``)."""
    loses = comparison.describe() if comparison.loses_beyond_noise else None
    return Facts("ranking", finite, metrics, "most popular", loses)
