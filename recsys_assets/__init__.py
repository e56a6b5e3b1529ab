"""recsys_assets: a Dagster pipeline from a ratings export to a PyTorch recommendation model.

The plain-Python core (no Dagster imports) is importable on its own::

    from recsys_assets import MovieDataLoader, clean_rating_data, Recommender

Names are imported on first use, so ``import recsys_assets.core.ingest`` does not
pay for importing PyTorch.
"""

from recsys_assets._lazy import lazy_exports

_EXPORTS = {
    "ArtifactStore": "recsys_assets.core.artifact_store",
    "BiasedMF": "recsys_assets.core.rating.model",
    "CleanedRatings": "recsys_assets.core.cleaning",
    "DataQualityError": "recsys_assets.core.cleaning",
    "clean_rating_data": "recsys_assets.core.cleaning",
    "MovieRatingDataset": "recsys_assets.core.rating.dataset",
    "build_mappings": "recsys_assets.core.ids",
    "split_ratings": "recsys_assets.core.splits",
    "ExportError": "recsys_assets.core.ingest",
    "MovieDataLoader": "recsys_assets.core.ingest",
    "Recommender": "recsys_assets.core.recommender",
    "IALSParams": "recsys_assets.core.ranking.params",
    "RankingModel": "recsys_assets.core.ranking.model",
    "train_ranking_model": "recsys_assets.core.ranking.train",
    "TrainConfig": "recsys_assets.core.rating.train_config",
    "train_model": "recsys_assets.core.rating.training",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
