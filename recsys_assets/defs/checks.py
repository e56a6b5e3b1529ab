"""Blocking asset checks on the cleaned ratings and the splits.

A failed blocking check stops the run before the assets downstream of the
checked one, so a bad export never reaches training. (The model's own checks
run inside ``recommendation_model``, before its file is published.)
"""

import dagster as dg
import numpy as np
import pandas as pd

from recsys_assets.core import quality, rating_scale
from recsys_assets.core.splits import split_indices


def _result(name: str, asset: str, outcome) -> dg.AssetCheckResult:
    passed, description, metadata = outcome
    return dg.AssetCheckResult(
        check_name=name,
        asset_key=asset,
        passed=bool(passed),
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata=metadata,
    )


CLEANED_CHECKS = {
    "non_empty": "At least one rating survived cleaning.",
    "no_nulls": "No missing values in any column.",
    "ratings_in_scale": f"Every rating lies within the rating scale ({rating_scale.current().describe()}).",
    "unique_pairs": "Each (user, movie) pair appears once.",
}


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(name, asset="cleaned_ratings", blocking=True, description=d)
        for name, d in CLEANED_CHECKS.items()
    ],
    name="cleaned_ratings_checks",
)
def cleaned_ratings_checks(cleaned_ratings: pd.DataFrame):
    yield _result("non_empty", "cleaned_ratings", quality.non_empty(cleaned_ratings))
    yield _result("no_nulls", "cleaned_ratings", quality.no_nulls(cleaned_ratings))
    yield _result("ratings_in_scale", "cleaned_ratings", quality.ratings_in_scale(cleaned_ratings))
    yield _result("unique_pairs", "cleaned_ratings", quality.unique_pairs(cleaned_ratings))


SPLIT_CHECKS = {
    "splits_disjoint": "No (user, movie) pair is in both the training and the validation split.",
    "split_sizes": "The validation split holds test_size of the ratings, within one row.",
    "split_reproducible": "Splitting the cleaned ratings again with the same seed gives the same validation split.",
}


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            name,
            asset="val_ratings",
            additional_deps=["train_ratings", "cleaned_ratings"],
            blocking=True,
            description=d,
        )
        for name, d in SPLIT_CHECKS.items()
    ],
    name="split_checks",
    ins={
        "train_ratings": dg.AssetIn("train_ratings"),
        "val_ratings": dg.AssetIn("val_ratings"),
        "cleaned_ratings": dg.AssetIn("cleaned_ratings"),
    },
)
def split_checks(
    context: dg.AssetCheckExecutionContext,
    train_ratings: pd.DataFrame,
    val_ratings: pd.DataFrame,
    cleaned_ratings: pd.DataFrame,
):
    test_size, random_state = _split_settings(context)
    yield _result("splits_disjoint", "val_ratings", quality.splits_disjoint(train_ratings, val_ratings))
    yield _result("split_sizes", "val_ratings", quality.split_sizes(train_ratings, val_ratings, test_size))
    _, rows = split_indices(len(cleaned_ratings), test_size=test_size, random_state=random_state)
    same = len(rows) == len(val_ratings) and all(
        np.array_equal(cleaned_ratings[column].to_numpy()[rows], val_ratings[column].to_numpy())
        for column in ("user_id", "movie_id")
    )
    detail = f"test_size={test_size}, random_state={random_state}: " + (
        "same rows in the same order" if same else "a re-split differs"
    )
    yield _result("split_reproducible", "val_ratings", (same, detail, {}))


def _split_settings(context) -> tuple[float, int]:
    """The settings the split was made with, from val_ratings' latest materialization metadata."""
    event = context.instance.get_latest_materialization_event(dg.AssetKey("val_ratings"))
    metadata = event.asset_materialization.metadata if event and event.asset_materialization else {}
    test_size = metadata.get("test_size")
    random_state = metadata.get("random_state")
    return (
        float(test_size.value) if test_size is not None else 0.2,
        int(random_state.value) if random_state is not None else 42,
    )
