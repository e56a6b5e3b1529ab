"""recsys_assets: a Dagster pipeline from a ratings export to a PyTorch recommendation model.

The plain-Python core (no Dagster imports) is importable on its own::

    from recsys_assets import MovieDataLoader, clean_rating_data, Recommender

Names are imported on first use, so ``import recsys_assets.core.ingest`` does not
pay for importing PyTorch.
"""

import importlib

_EXPORTS = {
    "ArtifactStore": "recsys_assets.core.artifact_store",
    "BiasedMF": "recsys_assets.core.model",
    "CleanedRatings": "recsys_assets.core.cleaning",
    "DataQualityError": "recsys_assets.core.cleaning",
    "clean_rating_data": "recsys_assets.core.cleaning",
    "MovieRatingDataset": "recsys_assets.core.dataset",
    "build_mappings": "recsys_assets.core.dataset",
    "split_ratings": "recsys_assets.core.dataset",
    "ExportError": "recsys_assets.core.ingest",
    "MovieDataLoader": "recsys_assets.core.ingest",
    "Recommender": "recsys_assets.core.recommender",
    "IALSParams": "recsys_assets.core.ranking.ials",
    "RankingModel": "recsys_assets.core.ranking.model",
    "train_ranking_model": "recsys_assets.core.ranking.train",
    "TrainConfig": "recsys_assets.core.training",
    "train_model": "recsys_assets.core.training",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'recsys_assets' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
