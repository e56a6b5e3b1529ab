"""Held out from the pipeline: give it part of a ratings file as its export, score what it publishes on the rest.

Shared by ``bench_ranking.py`` (part 2) and ``bench_random_exposure.py``.
"""

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from recsys_assets.core.ids import IdMapping
    from recsys_assets.core.ranking import HeldOut, UserItems


def run_pipeline(seen_part, folder: Path):
    """Every asset, materialized in process on ``seen_part`` (``user_id, movie_id, rating, timestamp``) written as
    ``folder/ratings_export.csv``, into ``folder/data``: (the run's result, its resources, its seconds)."""
    import dagster as dg

    from recsys_assets.definitions import ASSETS
    from recsys_assets.defs.resources import DeviceResource, RecsysStorage, resources_for

    export = folder / "ratings_export.csv"
    seen_part.rename(columns={"user_id": "userId", "movie_id": "movieId"}).to_csv(export, index=False)
    storage = RecsysStorage(export_path=str(export), data_dir=str(folder / "data"))
    resources = resources_for(storage, DeviceResource(device="cpu"))
    started = time.perf_counter()
    with dg.instance_for_test() as instance:
        result = dg.materialize(ASSETS, resources=resources, instance=instance, raise_on_error=False)
    return result, resources, time.perf_counter() - started


@dataclass
class HeldOutSplit:
    """The whole file's id mappings, what the pipeline saw (``seen``), what it never saw (``held``), and the users
    it saw who have held-out ratings (``scored``)."""

    users: "IdMapping"
    movies: "IdMapping"
    seen: "UserItems"
    held: "HeldOut"
    scored: np.ndarray

    @classmethod
    def of(cls, frame, seen_part, hidden) -> "HeldOutSplit":
        from recsys_assets.core.ids import IdMapping
        from recsys_assets.core.ranking import HeldOut, UserItems

        users, movies = IdMapping.fit(frame["user_id"]), IdMapping.fit(frame["movie_id"])
        su, sm = users.encode(seen_part["user_id"]), movies.encode(seen_part["movie_id"])
        seen = UserItems.from_pairs(su, sm, len(users), len(movies), seen_part["rating"].to_numpy(np.float32))
        hu, hm = users.encode(hidden["user_id"]), movies.encode(hidden["movie_id"])
        held = HeldOut.from_ratings(hu, hm, hidden["rating"].to_numpy(), len(users), len(movies))
        return cls(users, movies, seen, held, held.users[np.isin(held.users, np.unique(su))])

    def lists(self, table) -> np.ndarray:
        """A ``user_id, rank, movie_id`` table as the scored users' top 10s (movie indices, -1 where shorter)."""
        out = np.full((len(self.users), 10), -1, dtype=np.int64)
        out[self.users.encode(table["user_id"]), table["rank"].to_numpy() - 1] = self.movies.encode(table["movie_id"])
        return out[self.scored]

    def metrics(self, lists: np.ndarray) -> dict:
        """NDCG@10 and the rest of ``ranking_metrics`` for the scored users' ``lists``."""
        from recsys_assets.core.ranking import ranking_metrics

        return ranking_metrics(lists, self.scored, self.held, 10, self.seen.movie_counts()).metrics
