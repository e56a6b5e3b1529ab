"""The rating model's release: the file it publishes, its checks' results and its metadata.

The asset (:mod:`recsys_assets.defs.training`) trains and judges; this module writes the model file
(the published fit's weights, the held-out fit's for evaluation, the history), publishes it through
core/release/'s one rule or keeps it as a rejected candidate, and reports the checks and the UI metadata.
"""

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from recsys_assets.core.ids import IdMapping
from recsys_assets.core.rating.model_file import load_model_file, save_model_file
from recsys_assets.core.rating.train_config import TrainConfig
from recsys_assets.core.release.decision import FORCE_HINT
from recsys_assets.defs.publishing import (
    finite_check,
    log_outcome,
    promotion_check,
    provenance,
    sample_export,
    version_record,
)
from recsys_assets.defs.resources import RecsysStorage

if TYPE_CHECKING:  # PyTorch is imported by the training step itself, not by every process that loads the defs
    from recsys_assets.core.heldback import HeldBack
    from recsys_assets.core.rating.report import ModelReport
    from recsys_assets.core.rating.training import TrainResult
    from recsys_assets.core.release.gates import Verdict

METRICS = ("train_loss", "val_loss", "val_rmse", "val_mae", "global_mean_rmse", "bias_only_rmse", "ndcg_at_10")


@dataclass(frozen=True)
class TrainingRun:
    """One training's outcome and what publishing it needs."""

    result: "TrainResult"
    report: "ModelReport"
    users: IdMapping
    movies: IdMapping
    config: TrainConfig
    checkpoint: Path
    started: float
    published: "TrainResult"  # the fit whose weights are published: the refit on train + val, or ``result``
    learned_ratings: int  # the ratings the published weights were trained on
    heldback: "HeldBack"  # the held-back evaluation set stored with the file
    fingerprint: str  # of the data (the pair rule: both models of one data set go live together)
    verdict: "Verdict"  # whether it goes live (core/release/gates.py) and why not
    lineage: str  # first, same, rekeyed or new (core/release/lineage.py)

    @property
    def trained_on(self) -> str:
        return "train+val" if self.published is not self.result else "train"


def publish(
    context: dg.AssetExecutionContext, storage: RecsysStorage, run: "TrainingRun", *, keep: int
) -> dg.MaterializeResult:
    """Publish the model file if the report's blocking rule passes (else keep it as a rejected candidate)."""
    from recsys_assets.core.release.candidate import Candidate
    from recsys_assets.core.release.registry import publish as release_publish

    report, store, verdict = run.report, storage.store, run.verdict
    record = {
        "metrics": report.metrics,
        "config": asdict(run.config),
        "data": report.data_size(),
        "promotion": verdict.promotion.describe(),
        "lineage_kind": run.lineage,
        "sample_export": sample_export(context, storage),
    }
    candidate = Candidate(storage.MODEL, _saver(run), load_model_file, version_record(context, record), run.fingerprint)
    outcome = release_publish(store, candidate, verdict.publish, keep=keep, work_folder=storage.work_folder)
    log_outcome(context, storage, outcome)
    run.checkpoint.unlink(missing_ok=True)
    storage.drop_checkpoint(run.checkpoint.name)
    if not verdict.publish:
        context.log.error(
            f"model not published ({verdict.rejection}); it was saved to {store.url(outcome.name)} for inspection "
            f"and the previous model file is unchanged ({FORCE_HINT})"
        )
    elif verdict.promotion.forced:
        context.log.warning(f"model published by force: {verdict.promotion.describe()}")
    metadata = _metadata(context, storage, run, outcome)
    return dg.MaterializeResult(check_results=model_checks(report, verdict), metadata=metadata)


def _saver(run: "TrainingRun"):
    """Writes the model file: the published fit's weights, the held-out fit's for evaluation, the history."""
    report = run.report

    def save(path) -> None:
        save_model_file(
            path,
            report,
            model_state=run.published.model.state_dict(),
            optimizer_state=run.published.optimizer.state_dict(),
            user_ids=run.users.ids,
            movie_ids=run.movies.ids,
            config={
                **asdict(run.config),
                **report.data_size(),
                "trained_on": run.trained_on,
                "data_fingerprint": run.fingerprint,
            },
            history=run.result.history,
            heldback=run.heldback,
            evaluation_state=run.result.model.state_dict(),
        )

    return save


def _metadata(context, storage: RecsysStorage, run: "TrainingRun", outcome) -> dict:
    result, metrics = run.result, run.report.metrics
    store, target, version = storage.store, outcome.name, outcome.version
    return {
        "published": dg.MetadataValue.bool(outcome.published),
        "version": dg.MetadataValue.text(version or "not published"),
        "promotion": dg.MetadataValue.text(run.verdict.promotion.describe()),
        **{name: dg.MetadataValue.float(round(metrics[name], 4)) for name in METRICS},
        "epochs_run": dg.MetadataValue.int(result.epochs_run),
        "best_epoch": dg.MetadataValue.int(result.best_epoch),
        "stopped_early": dg.MetadataValue.bool(result.stopped_early),
        "resumed_from_epoch": dg.MetadataValue.int(result.resumed_from_epoch),
        "learning_rate_backoffs": dg.MetadataValue.int(len(result.learning_rate_backoffs)),
        "final_learning_rate": dg.MetadataValue.float(result.final_learning_rate),
        "batch_size": dg.MetadataValue.int(result.batch_size),  # capped for small data (core/rating/training.py)
        "device": dg.MetadataValue.text(result.device),
        "parameters": dg.MetadataValue.int(result.model.n_parameters),
        "train_seconds": dg.MetadataValue.float(round(result.train_seconds, 3)),
        "duration_seconds": dg.MetadataValue.float(round(time.perf_counter() - run.started, 3)),
        "ratings_per_second": dg.MetadataValue.float(round(result.ratings_per_second, 1)),
        "file_size_bytes": dg.MetadataValue.int(store.size(target)),
        "path": dg.MetadataValue.path(store.url(target)),
        "trained_on_ratings": dg.MetadataValue.int(run.learned_ratings),
        "trained_on": dg.MetadataValue.text(run.trained_on),
        **provenance(context, asdict(run.config)),
    }


def model_checks(report: "ModelReport", verdict: "Verdict") -> list[dg.AssetCheckResult]:
    """The rating model's checks: finite weights, validation RMSE against the two baselines, promotion."""
    metrics = report.metrics

    def against(name: str, passed: bool, severity, baseline: str, label: str) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            check_name=name,
            passed=passed,
            severity=severity,
            description=f"val RMSE {metrics['val_rmse']:.4f} vs {label} {metrics[baseline]:.4f}",
            metadata={"val_rmse": metrics["val_rmse"], "baseline_rmse": metrics[baseline]},
        )

    return [
        finite_check("weights_finite", report.weights_finite, "weights"),
        against(
            "beats_global_mean",
            report.beats_global_mean,
            dg.AssetCheckSeverity.ERROR,
            "global_mean_rmse",
            "global mean",
        ),
        against("beats_bias_only", report.beats_bias_only, dg.AssetCheckSeverity.WARN, "bias_only_rmse", "bias only"),
        promotion_check("not_worse_than_published", verdict.promotion),
    ]
