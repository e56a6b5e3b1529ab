"""Every environment variable recsys_assets reads: its name, its default and what it does.

This module is the one owner of the environment.  The resources, the executor
choice, the automation, the CLI and the scripts' defaults read their values
through it, and the README's table of settings is generated from it::

    python -m recsys_assets.settings       # prints the table the README shows
    python -m benchmarks.readme_blocks settings   # rewrites the README's settings block with it

A variable that is set but empty counts as unset (its default applies).
"""

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

TRUE_WORDS = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Setting:
    """One environment variable: ``name``, ``default`` (a string, as the environment holds it) and ``doc``.

    ``shown_default`` is how the README shows a default that is computed elsewhere."""

    name: str
    default: str
    doc: str
    shown_default: str = ""

    def get(self, environ: Mapping[str, str] | None = None) -> str:
        """The variable's value (surrounding spaces removed), else the default."""
        value = (os.environ if environ is None else environ).get(self.name, "").strip()
        return value or self.default

    def is_set(self, environ: Mapping[str, str] | None = None) -> bool:
        return bool((os.environ if environ is None else environ).get(self.name, "").strip())

    def flag(self, environ: Mapping[str, str] | None = None) -> bool:
        """True when the value is one of 1, true, yes, on (any case)."""
        return self.get(environ).lower() in TRUE_WORDS

    def integer(self, environ: Mapping[str, str] | None = None, *, minimum: int = 1) -> int:
        """The value as an integer of at least ``minimum``, or a ``ValueError`` naming the variable."""
        text = self.get(environ)
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{self.name} must be a whole number, got {text!r}") from None
        if value < minimum:
            raise ValueError(f"{self.name} must be at least {minimum}, got {value}")
        return value


EXPORT_PATH = Setting("RECSYS_EXPORT_PATH", "data/ratings_export.csv", "the export to ingest")
DATA_DIR = Setting(
    "RECSYS_DATA_DIR",
    "data",
    "tables, checkpoints, model files and plots: a folder or an fsspec URL such as `s3://bucket/recsys` "
    '(see "Production deployment")',
    shown_default="`data/`",
)
WORK_DIR = Setting(
    "RECSYS_WORK_DIR",
    "",
    "local folder for in-progress checkpoints and locks",
    shown_default="`RECSYS_DATA_DIR` when local, else a temp folder",
)
DROP_DIR = Setting(
    "RECSYS_DROP_DIR", "", "drop folder for new exports (below)", shown_default="`<RECSYS_DATA_DIR>/exports`"
)
MOVIES_PATH = Setting(
    "RECSYS_MOVIES_PATH",
    "",
    "MovieLens `movies.csv` for titles in `user_recommendations` and `recsys`",
    shown_default="unset",
)
EXECUTOR = Setting(
    "RECSYS_EXECUTOR",
    "in_process",
    "`in_process` (every step in the run's process: one import of PyTorch per run), `multiprocess` (a process "
    'per step), `k8s`, `celery` (see "Production deployment")',
)
DEVICE = Setting(
    "RECSYS_DEVICE",
    "auto",
    "`auto` (cuda, then mps, then cpu), `cpu`, `cuda`, `cuda:N`, `mps`; an unavailable device fails the "
    "training step before it starts",
)
KERNEL = Setting(
    "RECSYS_KERNEL",
    "auto",
    "the SGD step: `auto` runs the compiled kernel (Numba on the CPU, Triton on CUDA) when installed, "
    "`eager` plain PyTorch operations (same updates, slower)",
)
THREADS = Setting(
    "RECSYS_THREADS",
    "",
    "CPU threads of both models' training",
    shown_default="the CPUs this process may use (affinity mask, cgroup CPU quota)",
)
SENSOR_INTERVAL = Setting("RECSYS_SENSOR_INTERVAL", "30", "seconds between looks at the current export (below)")
RETRAIN_CRON = Setting("RECSYS_RETRAIN_CRON", "0 3 * * *", "when `retrain_schedule` runs (below)")
TIMEZONE = Setting("RECSYS_TIMEZONE", "UTC", "the time zone of `RECSYS_RETRAIN_CRON`")
RETRAIN_FORCE = Setting(
    "RECSYS_RETRAIN_FORCE",
    "",
    "`1`: the schedule retrains even when the export is unchanged",
    shown_default="off",
)
FORCE_PUBLISH = Setting(
    "RECSYS_FORCE_PUBLISH",
    "",
    "`1`: publish a new model even when the promotion rule rejects it",
    shown_default="off",
)
SERVE_HOST = Setting(
    "RECSYS_SERVE_HOST",
    "127.0.0.1",
    "the address `recsys serve` binds (loopback; `0.0.0.0` exposes the API to the network)",
)
SERVE_PORT = Setting("RECSYS_SERVE_PORT", "8000", "the port of `recsys serve`")
CELERY_BROKER = Setting(
    "RECSYS_CELERY_BROKER", "", "Celery broker URL (`RECSYS_EXECUTOR=celery`)", shown_default="unset"
)
CELERY_BACKEND = Setting("RECSYS_CELERY_BACKEND", "", "Celery result backend URL", shown_default="unset")
MOVIELENS_DIR = Setting(
    "RECSYS_MOVIELENS_DIR",
    "",
    "the MovieLens ml-latest-small folder (`ratings.csv`, `movies.csv`) the tests and benchmarks that need "
    "real data read; they are skipped without it",
    shown_default="`../shared/datasets/ml-latest-small` beside the checkout",
)
DAGSTER_HOME = Setting(
    "DAGSTER_HOME",
    "",
    "Dagster's run and event storage",
    shown_default="set by the scripts to `.dagster_home/`",
)

SETTINGS: tuple[Setting, ...] = (
    EXPORT_PATH,
    DATA_DIR,
    WORK_DIR,
    DROP_DIR,
    MOVIES_PATH,
    EXECUTOR,
    DEVICE,
    KERNEL,
    THREADS,
    SENSOR_INTERVAL,
    RETRAIN_CRON,
    TIMEZONE,
    RETRAIN_FORCE,
    FORCE_PUBLISH,
    SERVE_HOST,
    SERVE_PORT,
    CELERY_BROKER,
    CELERY_BACKEND,
    MOVIELENS_DIR,
    DAGSTER_HOME,
)


def data_path(name: str, environ: Mapping[str, str] | None = None) -> str:
    """``name`` inside ``RECSYS_DATA_DIR`` (a folder or a URL), e.g. ``data/recommendation_model.pth``."""
    return f"{DATA_DIR.get(environ).rstrip('/')}/{name}"


def movielens_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``RECSYS_MOVIELENS_DIR``, else ``../shared/datasets/ml-latest-small`` beside the checkout."""
    if MOVIELENS_DIR.is_set(environ):
        return Path(MOVIELENS_DIR.get(environ)).expanduser()
    return Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ml-latest-small"


def markdown_table() -> str:
    """The README's table of settings."""
    rows = ["| variable | default | what it sets |", "| --- | --- | --- |"]
    for s in SETTINGS:
        default = s.shown_default or (f"`{s.default}`" if s.default else "unset")
        rows.append(f"| `{s.name}` | {default} | {s.doc} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.stdout.write(markdown_table() + "\n")
