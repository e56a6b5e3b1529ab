"""Id mappings (raw id -> contiguous index), without PyTorch."""

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class IdMapping:
    """A raw id -> contiguous index mapping over sorted raw ids (deterministic)."""

    ids: np.ndarray  # sorted unique raw ids; position = index

    @classmethod
    def fit(cls, raw_ids) -> "IdMapping":
        return cls(np.unique(np.asarray(raw_ids, dtype=np.int64)))

    def __len__(self) -> int:
        return len(self.ids)

    def encode(self, raw_ids, *, unknown: int | None = None) -> np.ndarray:
        """Indices of ``raw_ids``; unknown ids raise unless ``unknown`` gives their index."""
        raw = np.asarray(raw_ids, dtype=np.int64)
        pos = np.searchsorted(self.ids, raw)
        pos_clipped = np.minimum(pos, max(len(self.ids) - 1, 0))
        known = (pos < len(self.ids)) & (self.ids[pos_clipped] == raw) if len(self.ids) else np.zeros(raw.shape, bool)
        if not known.all():
            if unknown is None:
                missing = raw[~known][:5].tolist()
                raise KeyError(f"{int((~known).sum())} id(s) not in the mapping, e.g. {missing}")
            pos = np.where(known, pos, unknown)
        return pos.astype(np.int64)

    def known(self, raw_ids) -> np.ndarray:
        raw = np.asarray(raw_ids, dtype=np.int64)
        if not len(self.ids):
            return np.zeros(raw.shape, bool)
        pos = np.minimum(np.searchsorted(self.ids, raw), len(self.ids) - 1)
        return self.ids[pos] == raw

    def to_dict(self) -> dict[int, int]:
        return {int(raw): i for i, raw in enumerate(self.ids)}

    @classmethod
    def from_dict(cls, mapping: dict) -> "IdMapping":
        ids = np.empty(len(mapping), dtype=np.int64)
        for raw, idx in mapping.items():
            ids[int(idx)] = int(raw)
        if len(ids) and not (np.diff(ids) > 0).all():
            raise ValueError("mapping indices are not ordered by raw id")
        return cls(ids)


def build_mappings(ratings: pd.DataFrame) -> tuple[IdMapping, IdMapping]:
    """User and movie mappings over the sorted unique ids of ``ratings``."""
    return IdMapping.fit(ratings["user_id"]), IdMapping.fit(ratings["movie_id"])


def mappings_table(users: IdMapping, movies: IdMapping) -> pd.DataFrame:
    """Both mappings as one long table ``kind, raw_id, index`` (how the asset stores them)."""
    return pd.concat(
        [
            pd.DataFrame({"kind": "user", "raw_id": users.ids, "index": np.arange(len(users))}),
            pd.DataFrame({"kind": "movie", "raw_id": movies.ids, "index": np.arange(len(movies))}),
        ],
        ignore_index=True,
    )


def mappings_from_table(table: pd.DataFrame) -> tuple[IdMapping, IdMapping]:
    out = []
    for kind in ("user", "movie"):
        part = table[table["kind"] == kind].sort_values("index")
        if not (part["index"].to_numpy() == np.arange(len(part))).all():
            raise ValueError(f"{kind} mapping indices are not contiguous")
        out.append(IdMapping(part["raw_id"].to_numpy(dtype=np.int64)))
    return out[0], out[1]
