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


def test_pair_rules_are_exact_for_ids_beyond_32_bits():
    """Ids that do not fit 32 bits use exact pair ranks: (1, 2**32) and (2, 0) are different pairs."""
    big = 2**32
    train = pd.DataFrame({"user_id": [1, 3], "movie_id": [big, 5]})
    val = pd.DataFrame({"user_id": [2, 3], "movie_id": [0, 5]})
    assert quality.splits_disjoint(train, val)[2]["shared_pairs"] == 1
    assert quality.splits_disjoint(train, val.iloc[:1])[0]
    assert quality.unique_pairs(pd.DataFrame({"user_id": [1, 2], "movie_id": [big, 0]}))[0]


def test_the_split_is_train_test_split_row_for_row():
    from sklearn.model_selection import train_test_split

    from recsys_assets.core.splits import split_ratings

    frame = pd.DataFrame({"user_id": range(1000), "movie_id": range(1000, 2000), "rating": 4.0})
    train, val = split_ratings(frame, test_size=0.2, random_state=7)
    ref_train, ref_val = train_test_split(frame, test_size=0.2, random_state=7)
    assert train.equals(ref_train.reset_index(drop=True)) and val.equals(ref_val.reset_index(drop=True))
