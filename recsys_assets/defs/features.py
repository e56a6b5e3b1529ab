"""Feature assets: id mappings and the train/validation split."""

import dagster as dg
import pandas as pd
from pydantic import Field

from recsys_assets.core.ids import build_mappings, mappings_table
from recsys_assets.core.splits import split_ratings
from recsys_assets.defs.owners import OWNERS


class SplitConfig(dg.Config):
    """How the ratings are split into training and validation sets: a seeded random split (scikit-learn's train_test_split)."""

    test_size: float = Field(default=0.2, description="Share of ratings held out for validation.")
    random_state: int = Field(default=42, description="Seed of the split.")


@dg.asset(group_name="features", kinds={"pandas", "parquet"}, owners=OWNERS)
def user_movie_mappings(cleaned_ratings: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """Raw user and movie ids -> contiguous indices (sorted ids, so deterministic).

    One table with columns kind ('user' or 'movie'), raw_id and index.
    """
    users, movies = build_mappings(cleaned_ratings)
    table = mappings_table(users, movies)
    return dg.Output(
        table,
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(table)),
            "users": dg.MetadataValue.int(len(users)),
            "movies": dg.MetadataValue.int(len(movies)),
        },
    )


@dg.multi_asset(
    outs={
        "train_ratings": dg.AssetOut(
            group_name="features",
            kinds={"pandas", "parquet"},
            owners=OWNERS,
            description="The training split of the cleaned ratings (80% by default).",
        ),
        "val_ratings": dg.AssetOut(
            group_name="features",
            kinds={"pandas", "parquet"},
            owners=OWNERS,
            description="The validation split of the cleaned ratings (20% by default), used for early stopping and metrics.",
        ),
    },
)
def rating_splits(config: SplitConfig, cleaned_ratings: pd.DataFrame):
    """Split the cleaned ratings into training and validation sets."""
    if not 0.0 < config.test_size < 1.0:
        raise ValueError(f"test_size must be between 0 and 1, got {config.test_size}")
    train, val = split_ratings(cleaned_ratings, test_size=config.test_size, random_state=config.random_state)
    for name, frame in (("train_ratings", train), ("val_ratings", val)):
        yield dg.Output(
            frame,
            output_name=name,
            metadata={
                "dagster/row_count": dg.MetadataValue.int(len(frame)),
                "share": dg.MetadataValue.float(round(len(frame) / max(len(cleaned_ratings), 1), 4)),
                "test_size": dg.MetadataValue.float(config.test_size),
                "random_state": dg.MetadataValue.int(config.random_state),
                "users": dg.MetadataValue.int(int(frame["user_id"].nunique())),
                "movies": dg.MetadataValue.int(int(frame["movie_id"].nunique())),
            },
        )
