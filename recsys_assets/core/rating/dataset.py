"""``MovieRatingDataset``: the rating model's ratings as tensors."""

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from recsys_assets.core.ids import IdMapping


class MovieRatingDataset(Dataset):
    """Ratings as tensors of user indices, movie indices and ratings.

    Indexing returns one ``(user, movie, rating)`` sample like any map-style
    dataset, but trainers should use :meth:`batches`, which slices the
    preloaded tensors with a shuffled permutation instead of collating
    samples one by one.
    """

    def __init__(self, users, movies, ratings):
        self.users = torch.as_tensor(np.array(users, dtype=np.int64))
        self.movies = torch.as_tensor(np.array(movies, dtype=np.int64))
        self.ratings = torch.as_tensor(np.array(ratings, dtype=np.float32))
        if not (len(self.users) == len(self.movies) == len(self.ratings)):
            raise ValueError("users, movies and ratings must have the same length")

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, users: IdMapping, movies: IdMapping) -> "MovieRatingDataset":
        return cls(users.encode(frame["user_id"]), movies.encode(frame["movie_id"]), frame["rating"].to_numpy())

    def __len__(self) -> int:
        return len(self.ratings)

    def __getitem__(self, idx):
        return self.users[idx], self.movies[idx], self.ratings[idx]

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(users, movies, ratings)`` as NumPy arrays (views of CPU tensors)."""
        return tuple(t.detach().cpu().numpy() for t in (self.users, self.movies, self.ratings))  # type: ignore[return-value]

    @classmethod
    def _of(cls, users: torch.Tensor, movies: torch.Tensor, ratings: torch.Tensor) -> "MovieRatingDataset":
        """A dataset over these tensors as they are (no copy, no dtype conversion)."""
        out = cls.__new__(cls)
        out.users, out.movies, out.ratings = users, movies, ratings
        return out

    def to(self, device) -> "MovieRatingDataset":
        return MovieRatingDataset._of(*(t.to(device) for t in (self.users, self.movies, self.ratings)))

    def concat(self, other: "MovieRatingDataset") -> "MovieRatingDataset":
        """These ratings followed by ``other``'s."""
        return MovieRatingDataset._of(*(torch.cat([a, b]) for a, b in zip(self[:], other[:])))

    def batches(self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None):
        """Yield ``(users, movies, ratings)`` batches by slicing (shuffled per call if asked)."""
        n = len(self)
        if shuffle:
            order = torch.randperm(n, generator=generator).to(self.ratings.device)
            users, movies, ratings = self.users[order], self.movies[order], self.ratings[order]
        else:
            users, movies, ratings = self.users, self.movies, self.ratings
        for start in range(0, n, batch_size):
            end = start + batch_size
            yield users[start:end], movies[start:end], ratings[start:end]
