"""The ranking model's settings and file name, importable without PyTorch (the Dagster config reads them)."""

import math
from dataclasses import asdict, dataclass

# The candidates the ranking_model asset compares on an inner split of each export's training data:
# the best capacity differs by data set (128 factors on MovieLens, 16 on the project's synthetic sample).
FACTORS = (128, 64, 16)
REGULARIZATION = (45.0, 100.0)


@dataclass(frozen=True)
class IALSParams:
    """Hyper-parameters of the ranking model (defaults chosen on a split of the training data; README)."""

    factors: int = 128
    regularization: float = 45.0
    alpha: float = 4.0  # confidence of a rated movie: 1 + alpha * 5 * (rating / 5) ** confidence_exponent
    confidence_exponent: float = 8.0
    iterations: int = 15
    seed: int = 42

    def __post_init__(self):
        if not 1 <= self.factors <= 4096:
            raise ValueError(f"factors must be between 1 and 4096, got {self.factors}")
        if not (math.isfinite(self.regularization) and self.regularization > 0):
            raise ValueError(f"regularization must be a positive number, got {self.regularization}")
        if not (math.isfinite(self.alpha) and self.alpha >= 0):
            raise ValueError(f"alpha must be a non-negative number, got {self.alpha}")
        if not (math.isfinite(self.confidence_exponent) and 0 <= self.confidence_exponent <= 10):
            raise ValueError(f"confidence_exponent must be between 0 and 10, got {self.confidence_exponent}")
        if not 1 <= self.iterations <= 1000:
            raise ValueError(f"iterations must be between 1 and 1000, got {self.iterations}")

    def to_dict(self) -> dict:
        return asdict(self)


# ---- the other candidates: item-item, popularity and the blends ----------------------------------
ITEM_ITEM_METHODS = ("auto", "ease", "rp3beta", "none")


@dataclass(frozen=True)
class ItemItemParams:
    """The item-item candidate: EASE up to ``max_ease_items`` movies (a dense n x n solve), RP3beta above.

    Both keep the ``neighbours`` strongest weights of each movie (a sparse n x neighbours matrix), which
    bounds the file and the scoring cost. ``rating_exponent``: EASE learns from, and scores with, each
    rated movie as ``(rating / top of the scale) ** rating_exponent`` (0: every rated movie counts 1),
    so a 5-star rating says more than a 2; ``ease_lambda`` is in the units of a binary rating (scaled
    by the mean squared input). ``ease_dropout`` ``p`` adds ``p / (1 - p)`` times each movie's own squared
    inputs to its penalty (the closed form of EASE trained on inputs dropped at rate ``p``: Steck's EDLAE,
    "Autoencoders that don't overfit towards the Identity", 2020), so a much-rated movie's weights are
    shrunk more than a rarely rated one's. Defaults chosen on inner splits (benchmarks/tune_ranking.py)."""

    method: str = "auto"
    ease_lambda: float = 300.0
    ease_dropout: float = 0.5
    rating_exponent: float = 1.0
    max_ease_items: int = 12_000  # 12,000^2 float32 = 0.58 GB per matrix (the solve holds about three)
    rp3_alpha: float = 1.0
    rp3_beta: float = 0.5
    neighbours: int = 100
    max_users: int = 20_000  # RP3beta's co-occurrences come from at most this many users (a random sample)

    def __post_init__(self):
        if self.method not in ITEM_ITEM_METHODS:
            raise ValueError(f"item_item method must be one of {', '.join(ITEM_ITEM_METHODS)}, got {self.method!r}")
        if not (math.isfinite(self.ease_lambda) and self.ease_lambda > 0):
            raise ValueError(f"ease_lambda must be a positive number, got {self.ease_lambda}")
        if not (math.isfinite(self.ease_dropout) and 0 <= self.ease_dropout <= 0.95):
            raise ValueError(f"ease_dropout must be between 0 and 0.95, got {self.ease_dropout}")
        if not (math.isfinite(self.rating_exponent) and 0 <= self.rating_exponent <= 10):
            raise ValueError(f"rating_exponent must be between 0 and 10, got {self.rating_exponent}")
        if not 0 <= self.max_ease_items <= 40_000:
            raise ValueError(f"max_ease_items must be between 0 and 40000, got {self.max_ease_items}")
        if not (math.isfinite(self.rp3_alpha) and self.rp3_alpha > 0 and math.isfinite(self.rp3_beta)):
            raise ValueError("rp3_alpha must be positive and rp3_beta finite")
        if not 1 <= self.neighbours <= 2_000:
            raise ValueError(f"neighbours must be between 1 and 2000, got {self.neighbours}")
        if self.max_users < 1:
            raise ValueError(f"max_users must be at least 1, got {self.max_users}")

    def resolved(self, n_movies: int) -> str:
        """The method used for a catalogue of ``n_movies``: ``auto`` is EASE up to the cap, RP3beta above."""
        if self.method != "auto":
            return self.method
        return "ease" if n_movies <= self.max_ease_items else "rp3beta"

    def to_dict(self) -> dict:
        return asdict(self)
