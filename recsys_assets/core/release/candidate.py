"""What a model asset hands the release: a :class:`Candidate` (its file, its validation, its record and
its :class:`~recsys_assets.core.release.gates.Verdict`), and what comes back: an :class:`Outcome`."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

RATING_FILE = "recommendation_model.pth"
RANKING_FILE = "ranking_model.pth"
MODEL_FILES = {"rating": RATING_FILE, "ranking": RANKING_FILE}  # the one list of live model files
PARTNERS = {RATING_FILE: RANKING_FILE, RANKING_FILE: RATING_FILE}


def rejected_name(name: str) -> str:
    """Where a rejected candidate of live file ``name`` is kept for inspection."""
    return f"{Path(name).stem}.rejected{Path(name).suffix}"


@dataclass(frozen=True)
class Candidate:
    """A trained model ready to be published as ``name`` in the store."""

    name: str  # the live file, e.g. recommendation_model.pth
    save: Callable[[Path], object]  # writes the model file to a local path
    validate: Callable[[Path], object]  # loads it back with the full validation; raises ValueError
    record: dict  # what the version's JSON keeps: metrics, config, data size, promotion
    fingerprint: str = ""  # of the data it was trained on; "" = published alone, whatever its partner holds

    @property
    def rejected_name(self) -> str:
        return rejected_name(self.name)


@dataclass(frozen=True)
class Outcome:
    """Where the candidate went: published as ``version``, staged for its partner, or kept as rejected."""

    published: bool
    name: str  # the file's name in the store: the live file, the staged one or the rejected one
    version: str | None = None
    note: str = ""  # what the pair rule did, when it did anything
