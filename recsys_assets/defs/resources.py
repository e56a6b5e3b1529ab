"""Resources: where data lives, which torch device trains, and how tables are stored.

Environment differences live here: :func:`default_resources` builds them from the
variables that ``recsys_assets/settings.py`` names (``RECSYS_EXPORT_PATH``,
``RECSYS_DATA_DIR``, ``RECSYS_DEVICE``, ...), as ``EnvVar``s the UI shows.
"""

import functools
import time
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from recsys_assets import settings
from recsys_assets.core.artifact_store import ArtifactStore
from recsys_assets.core.devices import is_explicit
from recsys_assets.core.exports import current_export
from recsys_assets.core.ingest import table_to_frame
from recsys_assets.core.rating.kernels import check_kernel
from recsys_assets.core.release.candidate import RANKING_FILE, RATING_FILE
from recsys_assets.settings import Setting

if TYPE_CHECKING:
    import torch


@functools.lru_cache(maxsize=16)
def _store(location: str) -> ArtifactStore:
    """One store per location, shared by every use of the resource in a process."""
    return ArtifactStore(location)


class RecsysStorage(dg.ConfigurableResource):
    """Where the ratings export is read from and where artifacts are written."""

    export_path: str = Field(
        default=settings.EXPORT_PATH.default,
        description="The ratings export to ingest (MovieLens ratings.csv format); env RECSYS_EXPORT_PATH.",
    )
    data_dir: str = Field(
        default=settings.DATA_DIR.default,
        description="Folder or fsspec URL (s3://bucket/prefix, gs://..., file://...) for tables, checkpoints, "
        "the model file and plots; env RECSYS_DATA_DIR.",
    )
    drop_dir: str = Field(
        default="",
        description="Local drop folder for new exports (empty: <data_dir>/exports, or <work_dir>/exports when "
        "data_dir is remote); its newest complete file is the current export; env RECSYS_DROP_DIR.",
    )
    movies_path: str = Field(
        default="",
        description="Optional MovieLens movies.csv (movieId,title,genres) for titles; env RECSYS_MOVIES_PATH.",
    )
    work_dir: str = Field(
        default="",
        description="Local folder for in-progress checkpoints and locks (empty: data_dir when it is local, "
        "else a folder under the system temp dir); env RECSYS_WORK_DIR.",
    )

    @property
    def movies_file(self) -> Path | None:
        return Path(self.movies_path) if self.movies_path else None

    @property
    def drop_folder(self) -> Path:
        if self.drop_dir:
            return Path(self.drop_dir)
        store = self.store
        return (Path(store.root) if store.is_local else self.work_folder) / "exports"

    def current_export(self) -> Path:
        """The drop folder's current export (its newest complete file, else export_path), resolved now: two
        calls may name two files. A run reads the export it pinned (``defs/export_pin.py``), not this."""
        return current_export(self.export_path, self.drop_folder)

    # artifact names under data_dir (a local folder or an fsspec URL such as s3://bucket/recsys)
    MODEL: ClassVar[str] = RATING_FILE
    REJECTED_MODEL: ClassVar[str] = "recommendation_model.rejected.pth"
    RANKING_MODEL: ClassVar[str] = RANKING_FILE
    REJECTED_RANKING_MODEL: ClassVar[str] = "ranking_model.rejected.pth"
    LOSS_PLOT: ClassVar[str] = "training_loss.png"
    EVALUATION_PLOT: ClassVar[str] = "model_evaluation.png"
    EXPOSURE_PLOT: ClassVar[str] = "model_evaluation_exposure.png"
    HISTOGRAM: ClassVar[str] = "rating_histogram.png"
    CHECKPOINTS: ClassVar[str] = "checkpoints"
    RUN_TABLES: ClassVar[str] = "tables/runs"  # tables/runs/<run id>/<asset>.parquet: each run's own tables

    @property
    def store(self) -> ArtifactStore:
        """Where tables, the model, plots and (mirrored) checkpoints are published (one cached store)."""
        return _store(self.data_dir)

    @property
    def is_local(self) -> bool:
        return self.store.is_local

    @property
    def work_folder(self) -> Path:
        """The local working folder (``data_dir`` itself when it is local)."""
        from recsys_assets.core.release.registry import work_folder_for

        return work_folder_for(self.data_dir, self.work_dir)

    @property
    def checkpoint_dir(self) -> Path:
        return self.work_folder / self.CHECKPOINTS

    @property
    def lock_dir(self) -> Path:
        return self.work_folder / "locks"

    def table_name(self, name: str) -> str:
        """The latest table ``name`` (what a run that did not make it reads)."""
        return f"tables/{name}.parquet"

    def run_table_name(self, run_id: str, name: str) -> str:
        """Run ``run_id``'s own copy of table ``name``."""
        return f"{self.RUN_TABLES}/{run_id}/{name}.parquet"

    def restore_checkpoints(self) -> int:
        """Remote store: bring its checkpoints to the local working folder when that has none
        (a step restarted on another machine). Returns the number of files fetched."""
        if self.is_local or (self.checkpoint_dir.exists() and any(self.checkpoint_dir.iterdir())):
            return 0
        return self.store.pull_dir(self.CHECKPOINTS, self.checkpoint_dir)

    def mirror_checkpoints(self) -> int:
        """Remote store: upload the local checkpoints that changed (parts first, manifests last)."""
        if self.is_local:
            return 0
        skip = lambda name: name.endswith((".lock", ".tmp", ".hwm")) or "/." in f"/{name}"  # noqa: E731
        return self.store.push_dir(self.checkpoint_dir, self.CHECKPOINTS, skip=skip)

    def drop_checkpoint(self, name: str) -> None:
        """Remove a finished checkpoint's mirror (the local copy is removed by its owner)."""
        if not self.is_local:
            store = self.store
            for entry in store.listdir(self.CHECKPOINTS):
                if entry == name or entry.startswith((f"{name}.", f"{name}/")):
                    store.remove(f"{self.CHECKPOINTS}/{entry}")


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

    @property
    def explicit(self) -> bool:
        """Whether ``device`` names a device rather than ``auto`` (core/devices.py's one parser)."""
        return is_explicit(self.device)

    def torch_device(self) -> "torch.device":
        from recsys_assets.core.devices import resolve_device  # PyTorch only in the steps that train

        check_kernel(self.kernel, hint=" (env RECSYS_KERNEL)")
        return resolve_device(self.device)


# asset metadata: True keeps the table's column schema off the asset page (a short table read through its chart)
COLUMN_SCHEMA_OFF = "recsys/no_column_schema"


class ParquetIOManager(dg.ConfigurableIOManager):
    """Stores pandas DataFrames as Parquet files, published atomically: each run's own copy
    ``<data_dir>/tables/runs/<run id>/<asset>.parquet`` and the latest ``<data_dir>/tables/<asset>.parquet``.

    A step reads the copy of the run that made its input (this run's, or the parent's in a re-execution),
    so two runs at once never read each other's tables; a run that did not make the input reads the latest.
    Writing a table prunes the run folders beyond the newest :data:`KEEP_RUNS` that are more than a day old
    (never the writing run's, nor one of a run still in progress). The folder comes from the storage
    resource, so tables always sit beside the model file."""

    storage: dg.ResourceDependency[RecsysStorage]

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(
                f"{context.asset_key.to_user_string()}: expected a pandas DataFrame, got {type(obj).__name__}"
            )
        storage, store, asset = self.storage, self.storage.store, _asset_name(context.asset_key)
        latest, run_id = storage.table_name(asset), _optional(lambda: context.run_id)
        names = [*([storage.run_table_name(run_id, asset)] if run_id else []), latest]
        table = pa.Table.from_pandas(obj, preserve_index=False)
        with store.write(names[0]) as tmp:  # written once, published as each name (atomically)
            pq.write_table(table, tmp, compression="zstd")
            for name in names[1:]:
                store.put(tmp, name)
        if run_id:
            _prune_runs(store, run_id, _optional(lambda: context.step_context.instance), context.log)
        metadata: dict[str, object] = {
            "path": dg.MetadataValue.path(store.url(latest)),
            "run_path": dg.MetadataValue.path(store.url(names[0])),
            "size_bytes": dg.MetadataValue.int(store.size(latest)),
        }
        if not (_optional(lambda: context.definition_metadata) or {}).get(COLUMN_SCHEMA_OFF):
            columns = [dg.TableColumn(name=str(c), type=str(t)) for c, t in obj.dtypes.items()]
            metadata["dagster/column_schema"] = dg.TableSchema(columns=columns)
        context.add_output_metadata(metadata)

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        storage, store, asset = self.storage, self.storage.store, _asset_name(context.asset_key)
        upstream = context.upstream_output
        source_run = _optional(lambda: upstream.run_id) if upstream is not None else None
        names = [*([storage.run_table_name(source_run, asset)] if source_run else []), storage.table_name(asset)]
        for name in names:  # the copy of the run that made it, else the latest
            try:
                with store.read(name) as path:
                    return table_to_frame(pq.read_table(path))
            except FileNotFoundError:
                continue
        raise FileNotFoundError(
            f"{store.url(names[-1])} not found: materialize {context.asset_key.to_user_string()} first"
        )


RUNS = RecsysStorage.RUN_TABLES
KEEP_RUNS = 3  # the newest run folders kept whatever their age
KEEP_SECONDS = 24 * 3600  # and every run folder written in the last day


def _asset_name(key: dg.AssetKey) -> str:
    return "__".join(key.path)


def _optional(get):
    """``get()``, or None where the context was built without it (a run id, a step context)."""
    try:
        return get()
    except dg.DagsterInvariantViolationError:
        return None


def _modified(store: ArtifactStore, name: str) -> float:
    """When ``name`` was last written (now, when the store cannot say)."""
    try:
        if store.is_local:
            return store.local_path(name).stat().st_mtime
        return store.fs.modified(store.path(name)).timestamp()
    except (OSError, NotImplementedError, AttributeError, ValueError):
        return time.time()


def _prune_runs(store: ArtifactStore, current: str, instance: "dg.DagsterInstance | None", log) -> None:
    """Remove the run folders beyond the newest KEEP_RUNS that are older than KEEP_SECONDS, except ``current``
    and any of a run that is not finished."""
    newest: dict[str, float] = {}
    for name in store.listdir(RUNS):
        run_id = name.split("/", 1)[0]
        newest[run_id] = max(newest.get(run_id, 0.0), _modified(store, f"{RUNS}/{name}"))
    cutoff = time.time() - KEEP_SECONDS
    for run_id in sorted(newest, key=newest.__getitem__, reverse=True)[KEEP_RUNS:]:
        if run_id == current or newest[run_id] >= cutoff or _unfinished(instance, run_id):
            continue
        try:
            store.remove(f"{RUNS}/{run_id}")
        except OSError as exc:  # another run pruned it first, or the store refused: the next write tries again
            log.warning(f"could not remove the tables of run {run_id}: {exc}")


def _unfinished(instance: "dg.DagsterInstance | None", run_id: str) -> bool:
    run = instance.get_run_by_id(run_id) if instance is not None else None
    return run is not None and not run.is_finished


def _env_or(setting: Setting):
    """An ``EnvVar`` (shown as such in the UI) when the variable is set, else the default."""
    return dg.EnvVar(setting.name) if setting.is_set() else setting.default


def resources_for(storage: RecsysStorage, device: DeviceResource | None = None) -> dict:
    """The three resources every asset run needs, with tables stored through ``storage``."""
    return {"storage": storage, "device": device or DeviceResource(), "io_manager": ParquetIOManager(storage=storage)}


def default_resources() -> dict:
    """The resources of the definitions, from the environment (``recsys_assets/settings.py``)."""
    storage = RecsysStorage(
        export_path=_env_or(settings.EXPORT_PATH),
        data_dir=_env_or(settings.DATA_DIR),
        drop_dir=_env_or(settings.DROP_DIR),
        movies_path=_env_or(settings.MOVIES_PATH),
        work_dir=_env_or(settings.WORK_DIR),
    )
    return resources_for(storage, DeviceResource(device=_env_or(settings.DEVICE), kernel=_env_or(settings.KERNEL)))


@dg.definitions
def resources() -> dg.Definitions:
    """The code location's resources (loaded with the rest of the defs folder)."""
    return dg.Definitions(resources=default_resources())
