"""The rating scale: the one owner of the lowest and highest valid rating, and of the step between ratings.

MovieLens rates in half stars from 0.5 to 5.0.  Every part of the project that
needs the scale reads :data:`SCALE` here, when it runs (never a copy taken at
import; the one exception is the Dagster check's description, written when the
definitions load): cleaning (which ratings are valid), the quality check on the cleaned
ratings, training (``TrainConfig.rating_min/max``: the clamp of its validation
figures), the report's baselines, the ranking model's confidence units, the
synthetic exports, and serving (the clamp of predictions and the ratings
``recommend_for_ratings`` accepts, for files that do not record their own).
A model file records the scale it was trained on and is served on that scale.
No PyTorch here: the Dagster definitions import it.
"""

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RatingScale:
    """Ratings lie in ``[low, high]``; ``step`` is the granularity of the synthetic exports (half stars)."""

    low: float = 0.5
    high: float = 5.0
    step: float = 0.5

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(f"rating_min ({self.low}) must be below rating_max ({self.high}), both finite")
        if not (math.isfinite(self.step) and self.step > 0):
            raise ValueError(f"the rating step must be a positive number, got {self.step}")

    @property
    def bounds(self) -> tuple[float, float]:
        return (self.low, self.high)

    def contains(self, ratings) -> np.ndarray:
        """A mask of the ratings on the scale (NaN is not)."""
        values = np.asarray(ratings, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            return (values >= self.low) & (values <= self.high)

    def snap(self, ratings) -> np.ndarray:
        """Ratings rounded to the nearest multiple of ``step`` and clipped to the scale."""
        values = np.asarray(ratings, dtype=np.float64)
        return np.clip(np.round(values / self.step) * self.step, self.low, self.high)

    def describe(self) -> str:
        return f"{self.low:g}-{self.high:g}"


SCALE = RatingScale()


def current() -> RatingScale:
    """The scale now (read at call time, so that a change to :data:`SCALE` reaches every user)."""
    return SCALE


def bounds(low: float | None = None, high: float | None = None) -> tuple[float, float]:
    """``(low, high)``, each defaulting to the scale's; refused unless finite and ``low < high``."""
    scale = current()
    chosen = RatingScale(scale.low if low is None else low, scale.high if high is None else high)
    return chosen.bounds


def narrowed(low: float | None = None, high: float | None = None) -> tuple[float, float]:
    """Like :func:`bounds`, refused when wider than the scale: the models are trained and served on it."""
    chosen, scale = bounds(low, high), current()
    if chosen[0] < scale.low or chosen[1] > scale.high:
        raise ValueError(
            f"rating_min/rating_max ({chosen[0]:g}-{chosen[1]:g}) must lie within the rating scale "
            f"{scale.describe()} (core/rating_scale.py), on which the models are trained and served"
        )
    return chosen


def recorded(config: dict) -> tuple[float, float]:
    """The scale a model file records (``rating_min``, ``rating_max`` in its config), else the current one."""
    return bounds(config.get("rating_min"), config.get("rating_max"))
