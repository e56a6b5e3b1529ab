"""The ranking model's release: the file it publishes, the evidence of its promotion, its checks and metadata.

The asset (:mod:`recsys_assets.defs.ranking`) trains; this module turns a :class:`RankingTraining` into
a :class:`RankingModel` file, judges it against the published one (core/release/'s one rule),
publishes it or keeps it as a rejected candidate, and reports the checks and the UI metadata.
"""

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dagster as dg

from recsys_assets.core.release.decision import FORCE_HINT, DataSize, Promotion, PromotionPolicy
from recsys_assets.defs.publishing import (
    finite_check,
    log_outcome,
    promotion_check,
    provenance,
    sample_export,
    version_record,
)
from recsys_assets.defs.resources import RecsysStorage

if TYPE_CHECKING:  # PyTorch and implicit are imported by the ranking step itself
    from recsys_assets.core.heldback import EvaluationPlan
    from recsys_assets.core.ranking.model import RankingModel
    from recsys_assets.core.ranking.train import RankingTraining, Ratings
    from recsys_assets.core.release.gates import Verdict
    from recsys_assets.core.release.lineage import Lineage


@dataclass(frozen=True)
class RankingRelease:
    """A trained ranking model, its file and the release's verdict (core/release/gates.py)."""

    result: "RankingTraining"
    size: DataSize
    model: "RankingModel"
    finite: bool  # every factor of both fits is finite
    verdict: "Verdict"
    lineage: str  # first, same, rekeyed or new

    @property
    def promotion(self) -> Promotion:
        return self.verdict.promotion

    @property
    def publish(self) -> bool:
        return self.verdict.publish

    @classmethod
    def of(cls, result: "RankingTraining", promotion: Promotion, size: DataSize, model: "RankingModel", lineage: str):
        from recsys_assets.core.release.gates import ranking_facts, verdict

        finite = result.published_model.all_finite() and result.evaluation_model.all_finite()
        facts = ranking_facts(result.metrics, finite, result.comparison)
        return cls(result, size, model, finite, verdict(facts, promotion), lineage)


def ranking_file(result: "RankingTraining", config, plan: "EvaluationPlan", mappings, *, fit_device) -> "RankingModel":
    """The file to publish: the refit's factors, the held-out fit's for evaluation, the chosen blend."""
    from recsys_assets.core.ranking.model import RankingModel

    published_item_item, evaluation_item_item = result.published_item_item, result.evaluation_item_item
    users, movies = mappings
    return RankingModel(
        result.published_model.user_factors,
        result.published_model.item_factors,
        users,
        movies,
        result.published_seen,
        result.selection.params,
        metrics=result.metrics,
        trained_on="train+val",
        info={
            "device": str(fit_device),
            "relevance_threshold": config.relevance_threshold,
            "evaluated_on": "a fit on train_ratings, scored on val_ratings",
            "capacity_candidates": result.selection.candidates,
            "data_fingerprint": plan.fingerprint,
            "blend_candidates": result.blend.candidates,
            "fallback": result.blend.fallback,
            "item_item": published_item_item.method if published_item_item else "none",
        },
        evaluation=(result.evaluation_model.user_factors, result.evaluation_model.item_factors),
        weights=result.blend.weights,
        item_item=published_item_item.weights if published_item_item else None,
        evaluation_item_item=evaluation_item_item.weights if evaluation_item_item else None,
        heldback=plan.heldback,
        item_exponent=published_item_item.rating_exponent if published_item_item else 0.0,
        min_ratings=result.blend.min_ratings,
    ).with_exposure_limit(config.max_exposure)


def publish(context: dg.AssetExecutionContext, storage: RecsysStorage, release: RankingRelease, *, keep: int):
    """Publish the file through core/release/registry.py (or keep it as a rejected candidate)."""
    from recsys_assets.core.ranking.model import RankingModel
    from recsys_assets.core.release.candidate import Candidate
    from recsys_assets.core.release.registry import publish as release_publish

    model = release.model
    record = {
        "metrics": release.result.metrics,
        "config": model.params.to_dict(),
        "data": release.size.to_dict(),
        "promotion": release.promotion.describe(),
        "lineage_kind": release.lineage,
        "sample_export": sample_export(context, storage),
    }
    fingerprint = model.info["data_fingerprint"]
    candidate = Candidate(
        storage.RANKING_MODEL, model.save, RankingModel.load, version_record(context, record), fingerprint
    )
    outcome = release_publish(storage.store, candidate, release.publish, keep=keep, work_folder=storage.work_folder)
    log_outcome(context, storage, outcome)
    return outcome


def log_verdict(context: dg.AssetExecutionContext, storage: RecsysStorage, release: RankingRelease, outcome) -> None:
    verdict, target = release.result.comparison.describe(), storage.store.url(outcome.name)
    if release.publish:
        context.log.info(f"{target}: {verdict}")
        if release.result.blend.fallback:
            context.log.warning(release.result.blend.fallback)
        return
    why = release.verdict.rejection or verdict
    context.log.error(
        f"ranking model not published ({why}); saved to {target} for inspection, "
        f"the previous ranking model is unchanged ({FORCE_HINT})"
    )


def ranking_checks(release: RankingRelease) -> list[dg.AssetCheckResult]:
    comparison = release.result.comparison
    beats_severity = dg.AssetCheckSeverity.ERROR if comparison.loses_beyond_noise else dg.AssetCheckSeverity.WARN
    return [
        finite_check("factors_finite", release.finite, "factors"),
        dg.AssetCheckResult(
            check_name="beats_most_popular",
            passed=comparison.beats,
            severity=beats_severity,
            description=comparison.describe()
            + (f" ({release.result.blend.fallback})" if release.result.blend.fallback else ""),
            metadata={
                "ndcg_at_10": round(comparison.ndcg, 4),
                "most_popular_ndcg_at_10": round(comparison.baseline_ndcg, 4),
                "gap": round(comparison.gap, 4),
                "gap_standard_error": round(comparison.standard_error, 4),
            },
        ),
        promotion_check("not_worse_than_published", release.promotion),
    ]


def ranking_metadata(context, storage, config, release: RankingRelease, outcome, *, fit_device, trained_on, started):
    result, store, target = release.result, storage.store, outcome.name
    params = result.selection.params
    return {
        "published": dg.MetadataValue.bool(outcome.published),
        "version": dg.MetadataValue.text(outcome.version or "not published"),
        "promotion": dg.MetadataValue.text(release.promotion.describe()),
        "path": dg.MetadataValue.path(store.url(target)),
        "device": dg.MetadataValue.text(str(fit_device)),
        "trained_on": dg.MetadataValue.text(trained_on),
        "duration_seconds": dg.MetadataValue.float(round(time.perf_counter() - started, 2)),
        "file_size_bytes": dg.MetadataValue.int(store.size(target)),
        **provenance(context, {**config.model_dump(), **params.to_dict()}),
        "candidates": dg.MetadataValue.md(_candidates_table(result.selection.candidates)),
        "chosen_blend": dg.MetadataValue.text(result.blend.weights.describe()),
        **({"fallback": dg.MetadataValue.text(result.blend.fallback)} if result.blend.fallback else {}),
        "min_ratings": dg.MetadataValue.int(result.blend.min_ratings),
        "max_exposure": dg.MetadataValue.float(release.model.max_exposure),
        "blend_candidates": dg.MetadataValue.md(_blend_table(result.blend.candidates)),
        "item_item": dg.MetadataValue.text(result.published_item_item.method if result.published_item_item else "none"),
        **{name: dg.MetadataValue.float(round(float(value), 4)) for name, value in result.metrics.items()},
    }


def ranking_promotion(
    current: "RankingModel | None",
    candidate: "RankingModel",
    result: "RankingTraining",
    data: tuple["Ratings", "Ratings"],
    *,
    users,
    movies,
    size: DataSize,
    policy: PromotionPolicy,
    threshold: float,
    found: "Lineage",
) -> Promotion:
    """The promotion decision against the published ranking model (core/release/): the evidence the lineage
    allows (ranking_evidence.py), each model as the blend it chose."""
    from recsys_assets.core.release.decision import decide
    from recsys_assets.core.release.ranking_evidence import ranking_evidence_list

    if current is None:
        return decide(size, None, [], policy)
    published = DataSize(len(current.users), len(current.movies), current.seen.nnz)
    evidence = ranking_evidence_list(
        current, candidate, result, data, users=users, movies=movies, found=found, threshold=threshold
    )
    return decide(size, published, evidence, policy, lineage=found)


def _candidates_table(candidates: list[dict]) -> str:
    if not candidates:
        return "one setting given: no comparison"
    rows = ["| factors | regularization | NDCG@10 on the inner split | fit s |", "| ---: | ---: | ---: | ---: |"]
    rows += [
        f"| {c['factors']} | {c['regularization']:g} | {c['inner_ndcg_at_10']:.4f} | {c['fit_seconds']:.1f} |"
        for c in candidates
    ]
    return "\n".join(rows)


def _blend_table(candidates: list[dict]) -> str:
    rows = ["| candidate | NDCG@10 on the inner split | coverage | chosen |", "| --- | ---: | ---: | --- |"]
    rows += [
        f"| {c['blend']} | {c['inner_ndcg_at_10']:.4f} | {c['inner_coverage']:.3f} | {'yes' if c['chosen'] else ''} |"
        for c in candidates
    ]
    return "\n".join(rows)
