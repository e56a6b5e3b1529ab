"""The data-quality rules behind the asset checks, called directly."""

import pandas as pd

from recsys_assets.core import quality


def test_quality_rules_on_good_and_bad_tables():
    good = pd.DataFrame(
        {"user_id": [1, 1, 2], "movie_id": [1, 2, 1], "rating": [4.0, 3.5, 5.0], "timestamp": [1, 2, 3]}
    )
    for rule in (quality.non_empty, quality.no_nulls, quality.ratings_in_scale, quality.unique_pairs):
        assert rule(good)[0]
    assert not quality.non_empty(good.iloc[:0])[0]
    assert not quality.no_nulls(good.assign(rating=[4.0, None, 5.0]))[0]
    assert not quality.ratings_in_scale(good.assign(rating=[4.0, 7.0, 5.0]))[0]
    assert not quality.unique_pairs(pd.concat([good, good.iloc[:1]]))[0]
    assert quality.splits_disjoint(good.iloc[:2], good.iloc[2:])[0]
    assert not quality.splits_disjoint(good.iloc[:2], good.iloc[1:])[0]
    assert quality.split_sizes(good.iloc[: 8 // 4], good.iloc[2:], 0.2)[0]
    big = pd.DataFrame({"user_id": range(100), "movie_id": 0})
    assert not quality.split_sizes(big.iloc[:70], big.iloc[70:], 0.2)[0]
