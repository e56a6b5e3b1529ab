"""The ranking model's settings and file name, importable without PyTorch (the Dagster config reads them)."""

import math
from dataclasses import asdict, dataclass

FILE_NAME = "ranking_model.pth"  # its name in the data folder, beside recommendation_model.pth

# The candidates the ranking_model asset compares on an inner split of each export's training data:
# the best capacity differs by data set (128 factors on MovieLens, 16 on the project's synthetic sample).
FACTORS = (128, 32, 16)
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
