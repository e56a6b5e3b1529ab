"""The rating model: biased matrix factorization.

``prediction = global_mean + user_bias[u] + movie_bias[i] + <user_factors[u], movie_factors[i]>``

The embeddings are sparse (``nn.Embedding(sparse=True)``), so a training step
produces gradients for the rows in the batch only and ``SparseAdam`` updates
only those rows: the cost of a step follows the batch size, not the number of
users and movies.
"""

import torch
from torch import nn


class BiasedMF(nn.Module):
    """Biased matrix factorization; call it as ``model(users, movies)`` with index tensors."""

    def __init__(
        self,
        n_users: int,
        n_movies: int,
        embedding_dim: int = 64,
        *,
        global_mean: float = 0.0,
        init_std: float = 0.1,
        sparse: bool = True,
    ):
        super().__init__()
        if n_users < 1 or n_movies < 1:
            raise ValueError(f"need at least one user and one movie, got {n_users} and {n_movies}")
        if embedding_dim < 1:
            raise ValueError(f"embedding_dim must be positive, got {embedding_dim}")
        self.n_users, self.n_movies, self.embedding_dim = n_users, n_movies, embedding_dim
        self.user_factors = nn.Embedding(n_users, embedding_dim, sparse=sparse)
        self.movie_factors = nn.Embedding(n_movies, embedding_dim, sparse=sparse)
        self.user_bias = nn.Embedding(n_users, 1, sparse=sparse)
        self.movie_bias = nn.Embedding(n_movies, 1, sparse=sparse)
        self.register_buffer("global_mean", torch.tensor(float(global_mean)))
        nn.init.normal_(self.user_factors.weight, 0.0, init_std)
        nn.init.normal_(self.movie_factors.weight, 0.0, init_std)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.movie_bias.weight)

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        p = self.user_factors(users)
        q = self.movie_factors(movies)
        return (
            self.global_mean + self.user_bias(users).squeeze(-1) + self.movie_bias(movies).squeeze(-1) + (p * q).sum(-1)
        )

    def penalty(self, users: torch.Tensor, movies: torch.Tensor, reg_factors: float, reg_bias: float):
        """L2 penalty on the rows of this batch only (the per-rating regularization of SGD MF)."""
        p = self.user_factors(users)
        q = self.movie_factors(movies)
        factors = (p.pow(2).sum(-1) + q.pow(2).sum(-1)).mean()
        biases = (self.user_bias(users).pow(2) + self.movie_bias(movies).pow(2)).mean()
        return reg_factors * factors + reg_bias * biases

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def all_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.parameters())
