"""Who rated what: the user x movie ratings as a compressed sparse row (CSR) matrix.

One structure serves every ranking step: the seen-movie index that top-N masks,
the confidences iALS learns from, and the rated movies that fold-in and
explanations solve against.
"""

from dataclasses import dataclass

import numpy as np

from recsys_assets.core.weights_file import torch_in_use


@dataclass(frozen=True)
class UserItems:
    """Row ``u`` holds the movies user ``u`` rated (``indices``, sorted) and the ratings (``values``).

    ``indptr`` has ``n_users + 1`` entries; ``values`` may be ``None`` when only
    the seen set matters.
    """

    indptr: np.ndarray  # int64, n_users + 1
    indices: np.ndarray  # int32 movie indices, sorted within each row
    values: np.ndarray | None  # float32 ratings aligned with indices
    n_movies: int

    @classmethod
    def from_pairs(cls, users, movies, n_users: int, n_movies: int, ratings=None) -> "UserItems":
        """Build from parallel arrays of user and movie indices (and ratings); pairs must be unique."""
        users = np.asarray(users, dtype=np.int64)
        movies = np.asarray(movies, dtype=np.int64)
        if users.shape != movies.shape:
            raise ValueError(f"users and movies differ in length: {users.shape} vs {movies.shape}")
        if len(users) and (users.min() < 0 or users.max() >= n_users or movies.min() < 0 or movies.max() >= n_movies):
            raise ValueError(f"indices out of range for {n_users} users x {n_movies} movies")
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(users, minlength=n_users), out=indptr[1:])
        if torch_in_use():  # training: Numba's counting sort, imported when a matrix is built
            from recsys_assets.core.ranking.kernels import csr_order

            order = csr_order(users, movies, indptr)
        else:  # the read path (a request's few ratings): the same order, without Numba
            order = np.lexsort((movies, users))
        values = None if ratings is None else np.asarray(ratings, dtype=np.float32)[order]
        return cls(indptr, movies[order].astype(np.int32), values, int(n_movies))

    @property
    def n_users(self) -> int:
        return len(self.indptr) - 1

    @property
    def nnz(self) -> int:
        return len(self.indices)

    def counts(self) -> np.ndarray:
        """Ratings per user."""
        return np.diff(self.indptr)

    def movie_counts(self) -> np.ndarray:
        """Ratings per movie."""
        return np.bincount(self.indices, minlength=self.n_movies)

    def row(self, user: int) -> np.ndarray:
        return self.indices[self.indptr[user] : self.indptr[user + 1]]

    def keys(self) -> np.ndarray:
        """Every pair as ``user * n_movies + movie``, sorted (for membership tests with ``searchsorted``).

        Computed once per matrix (the arrays are never changed in place): serving looks pairs up per request."""
        cached = self.__dict__.get("_keys")
        if cached is not None:
            return cached
        users = np.repeat(np.arange(self.n_users, dtype=np.int64), self.counts())
        keys = users * self.n_movies + self.indices.astype(np.int64)
        keys = keys if bool(np.all(keys[1:] >= keys[:-1])) else np.sort(keys)  # CSR rows are usually sorted
        keys.flags.writeable = False
        object.__setattr__(self, "_keys", keys)  # a frozen dataclass: the cache bypasses __setattr__
        return keys

    def contains(self, users, movies) -> np.ndarray:
        """Whether each (user, movie) index pair is in the matrix (any shape); an index of -1 never is."""
        users, movies = np.asarray(users, dtype=np.int64), np.asarray(movies, dtype=np.int64)
        known = (users >= 0) & (movies >= 0)
        keys = self.keys()
        if len(keys) == 0:
            return np.zeros(np.broadcast(users, movies).shape, dtype=bool)
        wanted = np.where(known, users * self.n_movies + movies, -1)
        pos = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        return known & (keys[pos] == wanted)

    def row_values(self, user: int) -> np.ndarray:
        if self.values is None:
            raise ValueError("this matrix holds no ratings")
        return self.values[self.indptr[user] : self.indptr[user + 1]]

    def _positions(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where every rated movie of ``users`` sits in ``indices`` (row after row), and each row's count."""
        users = np.asarray(users, dtype=np.int64)
        starts = self.indptr[users]
        counts = self.indptr[users + 1] - starts
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return np.repeat(starts, counts) + offsets, counts

    def pairs(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(row, movie)`` for every rated movie of ``users``; ``row`` indexes into ``users``."""
        positions, counts = self._positions(users)
        return np.repeat(np.arange(len(counts)), counts), self.indices[positions].astype(np.int64)

    def take(self, users: np.ndarray) -> "UserItems":
        """The rows of ``users``, in that order, as a matrix of ``len(users)`` rows (ratings kept)."""
        positions, counts = self._positions(users)
        values = self.values[positions] if self.values is not None else None
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return UserItems(indptr, self.indices[positions], values, self.n_movies)

    def to_scipy(self, values: np.ndarray | None = None):
        """A ``scipy.sparse.csr_matrix`` with ``values`` (default: the ratings)."""
        import scipy.sparse

        data = self.values if values is None else values
        if data is None:
            data = np.ones(self.nnz, dtype=np.float32)
        return scipy.sparse.csr_matrix((data, self.indices, self.indptr), shape=(self.n_users, self.n_movies))


def seen_matrix(users: np.ndarray, movies: np.ndarray, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR ``(indptr, indices)`` of the movies each user has rated, indices sorted per user."""
    n_movies = int(np.max(movies)) + 1 if len(movies) else 0
    matrix = UserItems.from_pairs(users, movies, n_users, n_movies)
    return matrix.indptr, matrix.indices
