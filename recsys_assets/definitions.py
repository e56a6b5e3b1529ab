"""The Dagster code location: every asset, resource, check, sensor and schedule of the project."""

import dagster as dg

from recsys_assets.defs import automation, checks, evaluation, executors, features, ingest, ranking, training
from recsys_assets.defs.resources import default_resources

ASSETS = [
    ingest.raw_ratings,
    ingest.cleaned_ratings,
    features.user_movie_mappings,
    features.rating_splits,
    training.recommendation_model,
    training.training_loss_plot,
    ranking.ranking_model,
    evaluation.user_recommendations,
    evaluation.model_evaluation,
]


def build_definitions(executor: str | None = None) -> dg.Definitions:
    """The code location; ``executor`` (default: env ``RECSYS_EXECUTOR``) is one of ``executors.EXECUTORS``."""
    return dg.Definitions(
        # code references: each asset page links to the function that defines it
        assets=dg.with_source_code_references(ASSETS),
        asset_checks=[checks.cleaned_ratings_checks, checks.split_checks],
        jobs=[automation.retrain_job],
        sensors=[automation.new_export_sensor],
        schedules=[automation.retrain_schedule],
        resources=default_resources(),
        executor=executors.executor_from_env(executor),
    )


defs = build_definitions()
