"""The seeded train/validation split of the cleaned ratings (scikit-learn's ``train_test_split``), without PyTorch."""

import numpy as np
import pandas as pd


def split_ratings(
    ratings: pd.DataFrame, test_size: float = 0.2, random_state: int = 42
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded random split into training and validation ratings (scikit-learn's ``train_test_split``).

    The rows are exactly ``train_test_split(ratings, ...)``'s, found by splitting row numbers
    (:func:`split_indices`) and then taking the rows once."""
    train_rows, val_rows = split_indices(len(ratings), test_size=test_size, random_state=random_state)
    return ratings.take(train_rows).reset_index(drop=True), ratings.take(val_rows).reset_index(drop=True)


def split_indices(n: int, *, test_size: float = 0.2, random_state: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """The row numbers of ``train_test_split`` of ``n`` rows: (training rows, validation rows)."""
    if n < 2:
        raise ValueError(f"need at least 2 ratings to split, got {n}")
    from sklearn.model_selection import train_test_split  # here: importing sklearn costs ~2 s per step process

    train_rows, val_rows = train_test_split(np.arange(n), test_size=test_size, random_state=random_state)
    return train_rows, val_rows
