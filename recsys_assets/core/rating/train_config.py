"""``TrainConfig``: the rating model's hyper-parameters, importable without PyTorch (the Dagster config reads them)."""

import math
from dataclasses import asdict, dataclass, field

from recsys_assets.core import rating_scale
from recsys_assets.core.rating.kernels import check_kernel

OPTIMIZERS = ("sgd", "adam")


@dataclass
class TrainConfig:
    """Hyper-parameters.

    The defaults are tuned (README, "Training engine"): per-rating SGD with
    count-weighted L2 and early stopping.  :meth:`plain_adam` gives plain
    ``Adam(lr=0.001)``, batch 1024, 10 epochs, no L2 (``optimizer="adam"``,
    which is ``SparseAdam`` on sparse embeddings).
    """

    optimizer: str = "sgd"
    embedding_dim: int = 64
    batch_size: int = 4096
    learning_rate: float = 0.01
    epochs: int = 100
    reg_factors: float = 0.1
    reg_bias: float = 0.2
    reg_count_exponent: float = 0.5
    # implicit feedback (SVD++-style, core/rating/implicit_feedback.py; SGD only): the step size and L2 of the implicit
    # factors of the movies a user rated, updated once per epoch; 0 turns it off (plain biased MF)
    implicit_lr: float = 0.001
    reg_implicit: float = 20.0
    init_std: float = 0.01
    patience: int = 10
    min_delta: float = 1e-4
    seed: int = 42
    # the clamp of the validation figures: the rating scale (core/rating_scale.py) when the config is made;
    # the model file records it and is served on it
    rating_min: float = field(default_factory=lambda: rating_scale.current().low)
    rating_max: float = field(default_factory=lambda: rating_scale.current().high)
    eval_batch_size: int = 1 << 16
    cuda_graphs: bool = True  # on CUDA, replay captured windows of SGD steps
    # after early stopping chose the epoch count on the validation split, train again on train + val for
    # that many epochs and publish that fit (held-out RMSE 0.857 -> 0.846 on ml-latest-small; README)
    refit: bool = True
    kernel: str = (
        "auto"  # SGD step: "auto" = compiled (Numba on CPU, Triton on CUDA) when installed; "eager" = PyTorch ops
    )

    @classmethod
    def plain_adam(cls, **overrides) -> "TrainConfig":
        """Plain Adam: lr 0.001, batch 1024, 10 epochs, no L2 penalty (``overrides`` replace any of them)."""
        values = {
            "optimizer": "adam",
            "batch_size": 1024,
            "learning_rate": 0.001,
            "epochs": 10,
            "reg_factors": 0.0,
            "reg_bias": 0.0,
            "refit": False,
            "implicit_lr": 0.0,
            "patience": 10,
        }
        values.update(overrides)
        return cls(**values)

    def validate(self) -> None:
        for name, value in asdict(self).items():  # NaN or infinity in any number is refused first
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value}")
        self._check_ranges()
        check_kernel(self.kernel)
        if self.rating_min >= self.rating_max:
            raise ValueError("rating_min must be below rating_max")

    def _check_ranges(self) -> None:
        if not self.init_std >= 0:
            raise ValueError(f"init_std must be non-negative, got {self.init_std}")
        if not self.min_delta >= 0:
            raise ValueError(f"min_delta must be non-negative, got {self.min_delta}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        for name in ("embedding_dim", "batch_size", "epochs", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.reg_factors < 0 or self.reg_bias < 0 or self.reg_implicit < 0:
            raise ValueError("regularization strengths must be non-negative")
        if self.implicit_lr < 0:
            raise ValueError(
                f"implicit_lr must be non-negative (0 turns implicit feedback off), got {self.implicit_lr}"
            )
        if self.patience < 0:
            raise ValueError(f"patience must be non-negative, got {self.patience}")
