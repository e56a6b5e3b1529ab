import numpy as np
import pandas as pd
import pytest
import torch

from recsys_assets.core.ids import IdMapping, build_mappings, mappings_from_table, mappings_table
from recsys_assets.core.rating.dataset import MovieRatingDataset
from recsys_assets.core.splits import split_ratings


def _ratings(n=100):
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "user_id": rng.integers(1, 20, n) * 7,
            "movie_id": rng.integers(1, 50, n) * 3,
            "rating": rng.uniform(0.5, 5, n),
            "timestamp": 0,
        }
    )


def test_mappings_are_sorted_contiguous_and_deterministic():
    df = _ratings()
    users, movies = build_mappings(df)
    assert (np.diff(users.ids) > 0).all() and users.encode(users.ids).tolist() == list(range(len(users)))
    shuffled_users, _ = build_mappings(df.sample(frac=1, random_state=3))
    assert (shuffled_users.ids == users.ids).all()
    assert IdMapping.from_dict(users.to_dict()).ids.tolist() == users.ids.tolist()
    u2, m2 = mappings_from_table(mappings_table(users, movies))
    assert u2.ids.tolist() == users.ids.tolist() and m2.ids.tolist() == movies.ids.tolist()


def test_unknown_ids_raise_or_fall_back():
    mapping = IdMapping.fit([5, 10, 20])
    with pytest.raises(KeyError, match="not in the mapping"):
        mapping.encode([10, 11])
    assert mapping.encode([10, 11, 99, 1], unknown=-1).tolist() == [1, -1, -1, -1]
    assert mapping.known([5, 6]).tolist() == [True, False]


def test_split_is_the_documents_80_20_and_reproducible():
    df = _ratings(1001)
    train, val = split_ratings(df)
    assert len(val) == 201 and len(train) == 800
    again, _ = split_ratings(df)
    pd.testing.assert_frame_equal(train, again)
    merged = pd.concat([train, val]).sort_values(["user_id", "movie_id", "rating"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(merged, df.sort_values(["user_id", "movie_id", "rating"]).reset_index(drop=True))


def test_dataset_items_and_sliced_batches():
    ds = MovieRatingDataset([0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [1.0, 2.0, 3.0, 4.0, 5.0])
    assert len(ds) == 5
    u, m, r = ds[2]
    assert (int(u), int(m), float(r)) == (2, 2, 3.0)
    batches = list(ds.batches(2))
    assert [len(b[0]) for b in batches] == [2, 2, 1]
    shuffled = list(ds.batches(2, shuffle=True, generator=torch.Generator().manual_seed(0)))
    users = torch.cat([b[0] for b in shuffled])
    assert sorted(users.tolist()) == [0, 1, 2, 3, 4]
    ratings = torch.cat([b[2] for b in shuffled])
    assert torch.equal(ratings, users.float() + 1)  # rows stay aligned under the shuffle
    with pytest.raises(ValueError, match="same length"):
        MovieRatingDataset([0], [0, 1], [1.0])
