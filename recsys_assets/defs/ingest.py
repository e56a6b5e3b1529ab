"""Ingest assets: the raw export as loaded, and the cleaned ratings with their quarantine."""

import base64
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from recsys_assets import settings
from recsys_assets.core import rating_scale
from recsys_assets.core.cleaning import REASONS, DataQualityError, clean_rating_data
from recsys_assets.core.exports import export_fingerprint, refused_exports
from recsys_assets.core.ingest import (
    CheckpointPathError,
    GzipLimits,
    MovieDataLoader,
    confined_checkpoint_path,
    no_retry_can_fix,
    one_line,
    read_lines,
    table_to_frame,
)
from recsys_assets.core.plots import plot_rating_histogram
from recsys_assets.core.presentation import clean_text
from recsys_assets.defs.export_pin import PinnedExport, pin_export, pinned_export, record_pin
from recsys_assets.defs.owners import OWNERS
from recsys_assets.defs.resources import RecsysStorage

DEFAULT_CHECKPOINT = "raw_ratings.checkpoint.json"


class RawRatingsConfig(dg.Config):
    """How the export is read: chunks and checkpoints, delimiter, header and column names."""

    chunk_size: int = Field(default=250, description="Rows per chunk; checkpoints fall on whole chunks.")
    checkpoint_interval: int = Field(default=50000, description="Rows between checkpoints.")
    mirror_interval: float = Field(
        default=10.0,
        ge=0,
        description="Seconds between uploads of the checkpoint to a remote artifact store (RECSYS_DATA_DIR=s3://...), "
        "so a load restarted on another machine resumes from it; 0: after every checkpoint. Local stores ignore it.",
    )
    checkpoint_file: str = Field(
        default="",
        description="Checkpoint manifest file name (JSON; never a pickle) inside the checkpoint folder "
        "(<work folder>/checkpoints); a name that leads outside it is refused. Empty: raw_ratings.checkpoint.json.",
    )
    delimiter: str | None = Field(
        default=None, description="Field separator; empty: detect (',', tab, '::', ';', '|')."
    )
    has_header: bool | None = Field(default=None, description="Whether line 1 is a header; empty: detect.")
    column_map: dict[str, str] = Field(
        default={},
        description="Header name -> user_id / movie_id / rating / timestamp, for exports with other column names.",
    )
    export_path: str = Field(
        default="",
        description="The export this run reads, pinned (the sensor and the schedule set it); empty: the drop "
        "folder's current export when the step starts (else RECSYS_EXPORT_PATH), pinned then for the whole run.",
    )
    export_fingerprint: str = Field(
        default="",
        description="The fingerprint export_path had when the run was requested (size, modification time, content); "
        "a file that no longer has it fails the run instead of training on other bytes. Empty: taken at the start.",
    )


class CleanedRatingsConfig(dg.Config):
    """Validation rules for ratings."""

    rating_min: float | None = Field(
        default=None, description="Lowest valid rating; empty: the rating scale's (core/rating_scale.py, 0.5)."
    )
    rating_max: float | None = Field(
        default=None,
        description="Highest valid rating; empty: the scale's (5.0). Both may narrow the scale, never widen it.",
    )
    max_rejected_fraction: float = Field(
        default=0.05, description="Fail when more than this share of rows is invalid (superseded duplicates excluded)."
    )


@dg.asset(
    group_name="ingest",
    kinds={"pandas", "parquet"},
    owners=OWNERS,
    pool="recsys_ingest",
    # transient errors (a network share hiccup) retry and resume from the checkpoint; the others fail at once
    retry_policy=dg.RetryPolicy(max_retries=2, delay=2.0, backoff=dg.Backoff.EXPONENTIAL),
)
def raw_ratings(
    context: dg.AssetExecutionContext, config: RawRatingsConfig, storage: RecsysStorage
) -> dg.Output[pd.DataFrame]:
    """The ratings export as loaded: one row per data line, with its source line number.

    Read by the chunked, checkpointed MovieDataLoader: an interrupted load resumes
    from its last checkpoint. Lines that cannot be parsed are kept with an error
    code and their raw text, for cleaning to quarantine.
    """
    try:
        return _load_raw_ratings(context, config, storage)
    except Exception as exc:
        # a bad export, a setting, a full disk, a read-only folder, a file in the way: retries cannot help
        if no_retry_can_fix(exc):  # (core/ingest/errors.py)
            raise dg.Failure(description=one_line(exc), allow_retries=False) from exc
        raise


def _checkpoint_callback(context: dg.AssetExecutionContext, storage: RecsysStorage, mirror_interval: float):
    """What the loader calls at each checkpoint: a progress line every 2 s (and at the end), and on a remote
    store a mirror of the checkpoint every ``mirror_interval`` seconds."""
    last_log, last_mirror = [0.0], [time.monotonic()]
    remote = not storage.is_local

    def progress(rows: int, done: int, total: int) -> None:
        now = time.monotonic()
        if now - last_log[0] >= 2.0 or done >= total:
            last_log[0] = now
            context.log.info(f"raw_ratings: {rows:,} rows loaded ({done / max(total, 1):.0%} of {total:,} bytes)")

    def on_checkpoint(rows: int, done: int, total: int) -> None:
        progress(rows, done, total)
        if remote and time.monotonic() - last_mirror[0] >= mirror_interval:  # a remote store: now and then
            storage.mirror_checkpoints()
            last_mirror[0] = time.monotonic()

    return on_checkpoint


def _load_raw_ratings(
    context: dg.AssetExecutionContext, config: RawRatingsConfig, storage: RecsysStorage
) -> dg.Output[pd.DataFrame]:
    try:  # before anything is touched: the load deletes its manifest and <manifest>.parts/ when done
        checkpoint = str(
            confined_checkpoint_path(storage.checkpoint_dir, config.checkpoint_file, default=DEFAULT_CHECKPOINT)
        )
    except CheckpointPathError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    for line in refused_exports(storage.drop_folder):
        context.log.warning(line)
    pin = pin_export(context, config.export_path, config.export_fingerprint, storage.current_export)
    context.log.info(
        f"raw_ratings: reading {pin.path}" + (f" (fingerprint {pin.fingerprint})" if pin.fingerprint else "")
    )
    limits = GzipLimits(
        settings.GZIP_MAX_BYTES.integer(), settings.GZIP_MAX_ROWS.integer(), settings.GZIP_MAX_RATIO.integer()
    )
    if storage.restore_checkpoints():
        context.log.info(f"fetched the checkpoints mirrored in {storage.store.url(storage.CHECKPOINTS)}")
    loader = MovieDataLoader(
        pin.path,
        checkpoint,
        chunk_size=config.chunk_size,
        checkpoint_interval=config.checkpoint_interval,
        delimiter=config.delimiter,
        has_header=config.has_header,
        column_map=config.column_map or None,
        on_checkpoint=_checkpoint_callback(context, storage, config.mirror_interval),
        gzip_limits=limits,
    )
    started = time.perf_counter()
    try:
        table = loader.load_table()
    except BaseException:
        if not storage.is_local:  # a failed or stopped load: leave its progress where a rerun elsewhere finds it
            storage.mirror_checkpoints()
        raise
    seconds = time.perf_counter() - started
    stats = loader.stats
    loaded = export_fingerprint(
        {"fingerprint": stats.source_fingerprint, "size": stats.source_bytes, "mtime_ns": stats.source_mtime_ns}
    )
    pin = record_pin(context, pin, loaded)  # the bytes read are the pinned ones (not a file replaced meanwhile)
    if stats.restart_reason:
        context.log.warning(f"checkpoint not resumed: {stats.restart_reason}")
    if stats.resumed_rows:
        context.log.info(f"resumed {stats.resumed_rows:,} rows from the checkpoint; re-read {stats.reread_rows:,}")
    frame = table_to_frame(table)
    # The load is complete and in memory; if publishing it fails, a re-run reads the export again.
    if loader.discard_checkpoint():  # False: a newer load holds it and discards it in turn
        storage.drop_checkpoint(Path(checkpoint).name)
    return dg.Output(frame, metadata=_raw_metadata(pin, stats, len(frame), seconds))


def _raw_metadata(pin: PinnedExport, stats, rows: int, seconds: float) -> dict:
    """raw_ratings' metadata: the pinned export (path, fingerprint) and the load's figures."""
    return {
        "dagster/row_count": dg.MetadataValue.int(rows),
        "source": dg.MetadataValue.path(str(pin.path.resolve())),
        "export_path": dg.MetadataValue.text(str(pin.path)),
        "source_bytes": dg.MetadataValue.int(stats.source_bytes),
        "source_fingerprint": dg.MetadataValue.text(stats.source_fingerprint),
        "export_fingerprint": dg.MetadataValue.text(pin.fingerprint),
        "malformed_rows": dg.MetadataValue.int(stats.malformed_rows),
        "blank_lines": dg.MetadataValue.int(stats.blank_lines),
        "resumed_rows": dg.MetadataValue.int(stats.resumed_rows),
        "reread_rows": dg.MetadataValue.int(stats.reread_rows),
        "checkpoints_written": dg.MetadataValue.int(stats.checkpoints_written),
        "load_seconds": dg.MetadataValue.float(round(seconds, 3)),
        "rows_per_second": dg.MetadataValue.float(round(rows / max(seconds, 1e-9), 1)),
        "delimiter": dg.MetadataValue.text(stats.delimiter),
    }


@dg.asset(group_name="ingest", kinds={"pandas", "parquet"}, owners=OWNERS, pool="recsys_ingest")
def cleaned_ratings(
    context: dg.AssetExecutionContext, config: CleanedRatingsConfig, storage: RecsysStorage, raw_ratings: pd.DataFrame
) -> dg.Output[pd.DataFrame]:
    """Valid, typed, de-duplicated ratings: user_id, movie_id, rating, timestamp.

    Rows with missing or invalid ids, ratings off the scale or unparseable lines
    go to a quarantine table (line, raw text, reason) next to this one; of
    duplicate (user, movie) pairs the latest by timestamp is kept. The step fails
    when the invalid share exceeds max_rejected_fraction.
    """
    try:
        rating_min, rating_max = rating_scale.narrowed(config.rating_min, config.rating_max)
    except ValueError as exc:
        raise dg.Failure(description=f"cleaned_ratings: {exc}", allow_retries=False) from exc
    pin = pinned_export(context)  # the file raw_ratings read, not whichever export is the newest now
    try:
        result = clean_rating_data(
            raw_ratings,
            rating_min=rating_min,
            rating_max=rating_max,
            max_rejected_fraction=config.max_rejected_fraction,
            source=str(pin.path) if pin is not None else "export",
        )
    except DataQualityError as exc:  # a bad export: keep its quarantine to inspect, fail clearly, do not retry
        metadata = {}
        if exc.quarantine is not None:
            metadata = _quarantine_metadata(storage, _write_quarantine(storage, exc.quarantine))
        raise dg.Failure(description=str(exc), allow_retries=False, metadata=metadata) from exc
    _exact_lines(context, pin, result.quarantine)
    result.quarantine = _write_quarantine(storage, result.quarantine.drop(columns="raw_rebuilt"))
    store = storage.store
    ratings = result.ratings
    if result.quarantine.shape[0]:
        context.log.warning(f"quarantined {len(result.quarantine):,} rows: {result.reason_counts}")
    histogram = ratings["rating"].value_counts().sort_index()
    hist_md = "| rating | count |\n|---:|---:|\n" + "\n".join(f"| {r:g} | {c:,} |" for r, c in histogram.items())
    if len(ratings):
        with store.write(storage.HISTOGRAM) as tmp:
            image = plot_rating_histogram(ratings["rating"].to_numpy(), tmp).read_bytes()
        hist_md = f"![Rating distribution](data:image/png;base64,{base64.b64encode(image).decode()})\n\n" + hist_md
    metadata = {
        "dagster/row_count": dg.MetadataValue.int(len(ratings)),
        "users": dg.MetadataValue.int(int(ratings["user_id"].nunique())),
        "movies": dg.MetadataValue.int(int(ratings["movie_id"].nunique())),
        "mean_rating": dg.MetadataValue.float(float(ratings["rating"].mean()))
        if len(ratings)
        else dg.MetadataValue.float(0.0),
        **_quarantine_metadata(storage, result.quarantine),
        "rating_histogram": dg.MetadataValue.md(hist_md),
    }
    for reason in REASONS:
        metadata[f"quarantined_{reason}"] = dg.MetadataValue.int(result.reason_counts.get(reason, 0))
    return dg.Output(ratings, metadata=metadata)


QUARANTINE_PREVIEW_ROWS = 10


def _exact_lines(context: dg.AssetExecutionContext, pin: PinnedExport | None, quarantine: pd.DataFrame) -> None:
    """Show the quarantined rows whose text was rebuilt exactly as the pinned export has them. A file changed
    since this run pinned it fails the step; one changed since an earlier run read it keeps the rebuilt text."""
    rebuilt = quarantine["raw_rebuilt"].to_numpy(dtype=bool)
    if not rebuilt.any() or pin is None:
        return
    if pin.same_run:
        pin.require("cleaned_ratings")
    elif (now := pin.changed()) is not None:
        context.log.warning(
            f"the export {pin.path} changed since raw_ratings read it (fingerprint {pin.fingerprint}, now {now}): "
            "the quarantine keeps the rebuilt text of its lines"
        )
        return
    lines = quarantine.loc[rebuilt, "line"]
    exact = read_lines(pin.path, lines)
    quarantine.loc[rebuilt, "raw"] = [exact.get(int(n), old) for n, old in zip(lines, quarantine.loc[rebuilt, "raw"])]


def _write_quarantine(storage: RecsysStorage, quarantine: pd.DataFrame) -> pd.DataFrame:
    """Publish the quarantine table next to the cleaned ratings (also when the export is rejected)."""
    with storage.store.write(storage.table_name("cleaned_ratings_quarantine")) as tmp:
        pq.write_table(pa.Table.from_pandas(quarantine, preserve_index=False), tmp)
    return quarantine


def _quarantine_metadata(storage: RecsysStorage, quarantine: pd.DataFrame) -> dict:
    """Where the quarantine is, its size, its counts by reason and a preview of its first rows."""
    counts = quarantine["reason"].value_counts()
    preview = quarantine.head(QUARANTINE_PREVIEW_ROWS).astype({"raw": object}).fillna("")
    preview["raw"] = preview["raw"].map(lambda text: clean_text(str(text))[:120])
    return {
        "quarantined_rows": dg.MetadataValue.int(len(quarantine)),
        "quarantine_path": dg.MetadataValue.path(storage.store.url(storage.table_name("cleaned_ratings_quarantine"))),
        "quarantine_by_reason": dg.MetadataValue.md(
            "| reason | rows |\n|---|---:|\n" + "\n".join(f"| {r} | {c:,} |" for r, c in counts.items())
        ),
        "quarantine_preview": dg.MetadataValue.table(
            records=[
                dg.TableRecord({k: (str(v) if k != "line" else int(v)) for k, v in row.items()})
                for row in preview.to_dict("records")
            ],
            schema=dg.TableSchema(
                columns=[
                    dg.TableColumn("line", "int"),
                    dg.TableColumn("raw", "string"),
                    dg.TableColumn("reason", "string"),
                    dg.TableColumn("detail", "string"),
                ]
            ),
        ),
    }
