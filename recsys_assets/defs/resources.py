"""Resources: where data lives, which torch device trains, and how tables are stored.

Environment differences live here, read from environment variables:
``RECSYS_EXPORT_PATH``, ``RECSYS_DATA_DIR``, ``RECSYS_DEVICE`` and ``RECSYS_KERNEL``.
"""

import os
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from pydantic import Field

from recsys_assets.core.devices import resolve_device
from recsys_assets.core.exports import current_export
from recsys_assets.core.loader import table_to_frame
from recsys_assets.core.storage import atomic_path

DEFAULT_EXPORT_PATH = "data/ratings_export.csv"
DEFAULT_DATA_DIR = "data"


class RecsysStorage(dg.ConfigurableResource):
    """Where the ratings export is read from and where artifacts are written."""

    export_path: str = Field(
        default=DEFAULT_EXPORT_PATH,
        description="The ratings export to ingest (MovieLens ratings.csv format); env RECSYS_EXPORT_PATH.",
    )
    data_dir: str = Field(
        default=DEFAULT_DATA_DIR,
        description="Folder for tables, checkpoints, the model file and plots; env RECSYS_DATA_DIR.",
    )
    drop_dir: str = Field(
        default="",
        description="Drop folder for new exports (empty: <data_dir>/exports); its newest complete file is the current export; env RECSYS_DROP_DIR.",
    )

    movies_path: str = Field(
        default="",
        description="Optional MovieLens movies.csv (movieId,title,genres) for titles; env RECSYS_MOVIES_PATH.",
    )

    @property
    def movies_file(self) -> Path | None:
        return Path(self.movies_path) if self.movies_path else None

    @property
    def drop_folder(self) -> Path:
        return Path(self.drop_dir) if self.drop_dir else self.root / "exports"

    @property
    def export(self) -> Path:
        """The current export: the newest complete file in the drop folder, else export_path."""
        return current_export(self.export_path, self.drop_folder)

    @property
    def root(self) -> Path:
        return Path(self.data_dir)

    @property
    def checkpoint_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def lock_dir(self) -> Path:
        return self.root / "locks"

    @property
    def model_path(self) -> Path:
        return self.root / "recommendation_model.pth"

    @property
    def loss_plot_path(self) -> Path:
        return self.root / "training_loss.png"

    def table_path(self, name: str) -> Path:
        return self.root / "tables" / f"{name}.parquet"


class DeviceResource(dg.ConfigurableResource):
    """The torch device that trains the model: ``auto`` (cuda, then mps, then cpu) or an explicit one."""

    device: str = Field(
        default="auto",
        description="auto, cpu, cuda, cuda:N or mps; env RECSYS_DEVICE. An unavailable device fails the step.",
    )

    kernel: str = Field(
        default="auto",
        description="SGD step: auto = compiled (Numba on the CPU, Triton on CUDA) when installed, "
        "eager = plain PyTorch operations; env RECSYS_KERNEL.",
    )

    def torch_device(self) -> torch.device:
        if self.kernel not in ("auto", "eager"):
            raise ValueError(f"kernel must be 'auto' or 'eager', got {self.kernel!r} (env RECSYS_KERNEL)")
        return resolve_device(self.device)


class ParquetIOManager(dg.ConfigurableIOManager):
    """Stores pandas DataFrames as Parquet files ``<base_dir>/<asset>.parquet``, written atomically."""

    base_dir: str = Field(default=f"{DEFAULT_DATA_DIR}/tables", description="Folder of the Parquet tables.")

    def _path(self, key: dg.AssetKey) -> Path:
        return Path(self.base_dir) / f"{'__'.join(key.path)}.parquet"

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()}: expected a pandas DataFrame, got {type(obj).__name__}")
        path = self._path(context.asset_key)
        table = pa.Table.from_pandas(obj, preserve_index=False)
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp, compression="zstd")
        schema = dg.TableSchema(columns=[dg.TableColumn(name=str(c), type=str(t)) for c, t in obj.dtypes.items()])
        context.add_output_metadata(
            {
                "path": dg.MetadataValue.path(str(path.resolve())),
                "size_bytes": dg.MetadataValue.int(path.stat().st_size),
                "dagster/column_schema": schema,
            }
        )

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        path = self._path(context.asset_key)
        if not path.exists():
            raise FileNotFoundError(
                f"{path} not found: materialize {context.asset_key.to_user_string()} first"
            )
        return table_to_frame(pq.read_table(path))


def _env_or(name: str, default: str):
    """An ``EnvVar`` (shown as such in the UI) when the variable is set, else the default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def default_resources() -> dict:
    data_dir = os.environ.get("RECSYS_DATA_DIR") or DEFAULT_DATA_DIR
    return {
        "storage": RecsysStorage(
            export_path=_env_or("RECSYS_EXPORT_PATH", DEFAULT_EXPORT_PATH),
            data_dir=_env_or("RECSYS_DATA_DIR", DEFAULT_DATA_DIR),
            drop_dir=_env_or("RECSYS_DROP_DIR", ""),
            movies_path=_env_or("RECSYS_MOVIES_PATH", ""),
        ),
        "device": DeviceResource(device=_env_or("RECSYS_DEVICE", "auto"), kernel=_env_or("RECSYS_KERNEL", "auto")),
        "io_manager": ParquetIOManager(base_dir=str(Path(data_dir) / "tables")),
    }
