"""recsys_assets: a Dagster pipeline from a ratings export to a PyTorch recommendation model.

The plain-Python core (no Dagster imports) is importable on its own::

    from recsys_assets import MovieDataLoader, clean_rating_data, Recommender
"""

from recsys_assets.core.cleaning import CleanedRatings, DataQualityError, clean_rating_data
from recsys_assets.core.dataset import MovieRatingDataset, build_mappings, split_ratings
from recsys_assets.core.loader import ExportError, MovieDataLoader
from recsys_assets.core.model import BiasedMF
from recsys_assets.core.recommender import Recommender
from recsys_assets.core.training import TrainConfig, train_model

__all__ = [
    "BiasedMF",
    "CleanedRatings",
    "DataQualityError",
    "ExportError",
    "MovieDataLoader",
    "MovieRatingDataset",
    "Recommender",
    "TrainConfig",
    "build_mappings",
    "clean_rating_data",
    "split_ratings",
    "train_model",
]
