"""The ranking model asset: iALS fitted on the splits, checked against most-popular, then published."""

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from recsys_assets.core.ids import mappings_from_table
from recsys_assets.core.locks import exclusive_lock
from recsys_assets.core.promotion import FORCE_HINT, DataSize, Promotion, PromotionPolicy
from recsys_assets.core.ranking.params import FACTORS, ITEM_ITEM_METHODS, REGULARIZATION, IALSParams, ItemItemParams
from recsys_assets.defs.executors import TRAINING_OP_TAGS
from recsys_assets.defs.owners import OWNERS
from recsys_assets.defs.publishing import (
    PromotionConfig,
    load_published,
    log_outcome,
    log_plan,
    promotion_check,
    provenance,
    version_record,
)
from recsys_assets.defs.resources import DeviceResource, RecsysStorage

if TYPE_CHECKING:  # PyTorch and implicit are imported by the ranking step itself
    from recsys_assets.core.heldback import EvaluationPlan
    from recsys_assets.core.ranking.model import RankingModel
    from recsys_assets.core.ranking.train import CandidateSettings, RankingTraining, Ratings

_DEFAULTS = IALSParams()
_ITEMS = ItemItemParams()


class RankingConfig(PromotionConfig):
    """Settings of the ranking model (implicit-feedback ALS) and of its publishing rule.

    The defaults were chosen on inner splits of the training split of ml-latest-small
    (benchmarks/tune_ranking.py), never on the reported validation figures.
    """

    factors: list[int] = Field(
        default=list(FACTORS),
        description="Size of the user and movie factors: several values are compared on an inner "
        "split of the training data and the best is used; one value fixes it.",
    )
    regularization: list[float] = Field(
        default=list(REGULARIZATION), description="L2 penalty on every factor (ALS's lambda): compared like factors."
    )
    alpha: float = Field(
        default=_DEFAULTS.alpha,
        description="Weight of a rated movie: confidence = 1 + alpha * 5 * (rating / 5) ** confidence_exponent; unrated movies weigh 1.",
    )
    confidence_exponent: float = Field(
        default=_DEFAULTS.confidence_exponent,
        description="How much more a high rating counts than a low one (1: in proportion to the stars).",
    )
    iterations: int = Field(default=_DEFAULTS.iterations, description="ALS sweeps (users, then movies).")
    seed: int = Field(default=_DEFAULTS.seed, description="Seed of the initial factors.")
    relevance_threshold: float = Field(
        default=4.0, description="A validation rating at or above this makes the movie relevant."
    )
    noise_z: float = Field(
        default=2.0,
        description="Losing to most-popular by more than this many standard errors of the per-user NDCG gap blocks publishing.",
    )
    item_item: str = Field(
        default=_ITEMS.method,
        description=f"The item-item candidate: {', '.join(ITEM_ITEM_METHODS)} (auto: EASE up to max_ease_items movies, "
        "RP3beta above). Blended with iALS and popularity; the blend is chosen on an inner split.",
    )
    ease_lambda: float = Field(default=_ITEMS.ease_lambda, description="EASE's L2 penalty.")
    ease_rating_exponent: float = Field(
        default=_ITEMS.rating_exponent,
        description="EASE reads each rated movie as (rating / 5) ** this, when it learns and when it scores "
        "(0: every rated movie counts 1).",
    )
    max_ease_items: int = Field(
        default=_ITEMS.max_ease_items,
        description="The largest catalogue EASE is used for (it holds a few movies x movies float32 matrices).",
    )
    neighbours: int = Field(default=_ITEMS.neighbours, description="Item-item weights kept per movie.")
    blend: bool = Field(
        default=True,
        description="Compare iALS with item-item, most popular and their blends on an inner split and publish the "
        "best; false: iALS alone.",
    )
    diversity: float = Field(
        default=1.0,
        description="A popularity penalty is kept when its NDCG@10 on the inner split stays within this many "
        "standard errors of the best candidate's (more movies of the catalogue reach the lists); 0 turns it off.",
    )

    def candidates(self) -> "CandidateSettings":
        """The candidates train_ranking_model compares (settings validated here)."""
        from recsys_assets.core.ranking.train import CandidateSettings

        if not (np.isfinite(self.diversity) and self.diversity >= 0):
            raise ValueError(f"diversity must be a non-negative number, got {self.diversity}")
        items = ItemItemParams(
            method=self.item_item,
            ease_lambda=self.ease_lambda,
            rating_exponent=self.ease_rating_exponent,
            max_ease_items=self.max_ease_items,
            neighbours=self.neighbours,
        )
        return CandidateSettings(self.factors, self.regularization, items, self.diversity, blend=self.blend)

    def params(self) -> IALSParams:
        """The fixed settings (with the first candidate of each list); every candidate is validated here."""
        if not self.factors or not self.regularization:
            raise ValueError("factors and regularization need at least one value each")
        for f in self.factors:
            for r in self.regularization:
                IALSParams(
                    factors=f,
                    regularization=r,
                    alpha=self.alpha,
                    confidence_exponent=self.confidence_exponent,
                    iterations=self.iterations,
                    seed=self.seed,
                )
        return IALSParams(
            factors=self.factors[0],
            regularization=self.regularization[0],
            alpha=self.alpha,
            confidence_exponent=self.confidence_exponent,
            iterations=self.iterations,
            seed=self.seed,
        )


RANKING_CHECKS = [
    dg.AssetCheckSpec("factors_finite", asset="ranking_model", blocking=True, description="Every factor is finite."),
    dg.AssetCheckSpec(
        "beats_most_popular",
        asset="ranking_model",
        blocking=True,
        description="NDCG@10 on the validation split beats a most-popular list. Losing within noise warns; "
        "losing by more than noise fails and the model is not published.",
    ),
    dg.AssetCheckSpec(
        "not_worse_than_published",
        asset="ranking_model",
        blocking=True,
        description="The data did not shrink, and on validation ratings the published ranking model never trained "
        "on, the new model's NDCG@10 is within the tolerance of the published model's.",
    ),
]


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


@dg.asset(
    group_name="training",
    kinds={"pytorch"},
    owners=OWNERS,
    check_specs=RANKING_CHECKS,
    pool="recsys_training",
    op_tags=TRAINING_OP_TAGS,
)
def ranking_model(
    context: dg.AssetExecutionContext,
    config: RankingConfig,
    storage: RecsysStorage,
    device: DeviceResource,
    user_movie_mappings: pd.DataFrame,
    train_ratings: pd.DataFrame,
    val_ratings: pd.DataFrame,
) -> dg.MaterializeResult:
    """The ranking model that orders recommendations, saved as ranking_model.pth in the data folder.

    Implicit-feedback ALS (iALS): every rated movie is a positive weighted by its rating,
    every other movie a weak negative, so the factors learn what a user will watch and like
    rather than how many stars they give. Its capacity (factors, regularization) is chosen
    among the configured candidates on an inner split of the training split; it is then
    fitted on the training split and scored on the validation split beside a most-popular
    list (these are the reported figures and the publishing rule's evidence), and fitted
    again on training + validation with the same settings: the published file uses every
    rating the pipeline saw. Loads with torch.load(..., weights_only=True).
    """
    params = config.params()  # invalid settings fail here, before any work
    candidates = config.candidates()
    policy = config.policy()
    if not (np.isfinite(config.noise_z) and config.noise_z >= 0):
        raise ValueError(f"noise_z must be a non-negative number, got {config.noise_z}")
    from recsys_assets.core.heldback import plan_against
    from recsys_assets.core.ranking.ials import ials_device  # PyTorch and implicit: once the settings are valid
    from recsys_assets.core.ranking.model import RankingModel
    from recsys_assets.core.ranking.train import train_ranking_model

    fit_device, note = ials_device(device.torch_device(), explicit=device.explicit)
    if note:
        context.log.info(note)
    users, movies = mappings_from_table(user_movie_mappings)
    current = load_published(context, storage, storage.RANKING_MODEL, RankingModel.load)
    plan, unrelated = plan_against(train_ratings, val_ratings, users, movies, current)
    log_plan(context, plan, unrelated)
    data = _RankingData.of(plan, train_ratings, val_ratings, users, movies)
    context.log.info(
        f"fitting iALS on {fit_device}: {len(data.train):,} training ratings, {len(data.val):,} validation ratings, "
        f"{len(users):,} users, {len(movies):,} movies; factors {config.factors} x regularization {config.regularization}, "
        f"alpha {params.alpha:g}, confidence exponent {params.confidence_exponent:g}, {params.iterations} iterations"
    )
    started = time.perf_counter()
    with exclusive_lock(storage.lock_dir / "ranking_model.lock", "ranking_model"):
        result = train_ranking_model(
            data.train,
            data.val,
            len(users),
            len(movies),
            params,
            device=fit_device,
            threshold=config.relevance_threshold,
            noise_z=config.noise_z,
            candidates=candidates,
            log=context.log.info,
            refit=data.refit,
            seen=data.everything,
        )
        size = DataSize(len(users), len(movies), len(data.everything))
        promotion = ranking_promotion(
            current,
            result,
            data.train,
            data.val,
            users=users,
            movies=movies,
            size=size,
            policy=policy,
            threshold=config.relevance_threshold,
            unrelated=unrelated,
        )
        model = _ranking_file(result, config, plan, (users, movies), fit_device=fit_device)
        release = _RankingRelease.of(result, promotion, size, model)
        outcome = _release(context, storage, release, keep=config.keep_versions)
    _log_verdict(context, storage, release, outcome)
    trained_on = f"train + val ({len(data.train) + len(data.val):,} ratings)"
    metadata = _ranking_metadata(
        context, storage, config, release, outcome, fit_device=fit_device, trained_on=trained_on, started=started
    )
    return dg.MaterializeResult(check_results=_ranking_checks(release), metadata=metadata)


@dataclass(frozen=True)
class _RankingData:
    """The ratings the ranking model is fitted and judged on, as index arrays."""

    train: "Ratings"
    val: "Ratings"
    refit: "Ratings"  # train + the validation ratings the refit learns from
    everything: "Ratings"  # every rating of the export (the published model's seen movies)

    @classmethod
    def of(cls, plan, train_ratings: pd.DataFrame, val_ratings: pd.DataFrame, users, movies) -> "_RankingData":
        from recsys_assets.core.ranking.train import Ratings

        train, val, refit, everything = (
            Ratings.from_frame(f, users, movies)
            for f in (plan.train, plan.val, plan.refit_val, pd.concat([train_ratings, val_ratings], ignore_index=True))
        )
        return cls(train, val, train.concat(refit), everything)


@dataclass(frozen=True)
class _RankingRelease:
    """A trained ranking model, its file and the publishing decision."""

    result: "RankingTraining"
    promotion: Promotion
    size: DataSize
    model: "RankingModel"
    finite: bool  # every factor of both fits is finite
    publish: bool  # finite, not beyond noise below most popular, and the promotion rule passed

    @classmethod
    def of(cls, result: "RankingTraining", promotion: Promotion, size: DataSize, model: "RankingModel"):
        finite = result.published_model.all_finite() and result.evaluation_model.all_finite()
        publish = finite and not result.comparison.loses_beyond_noise and promotion.publish
        return cls(result, promotion, size, model, finite, publish)


def _ranking_file(
    result: "RankingTraining", config: RankingConfig, plan: "EvaluationPlan", mappings, *, fit_device
) -> "RankingModel":
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
            "item_item": published_item_item.method if published_item_item else "none",
        },
        evaluation=(result.evaluation_model.user_factors, result.evaluation_model.item_factors),
        weights=result.blend.weights,
        item_item=published_item_item.weights if published_item_item else None,
        evaluation_item_item=evaluation_item_item.weights if evaluation_item_item else None,
        heldback=plan.heldback,
        item_exponent=published_item_item.rating_exponent if published_item_item else 0.0,
    )


def _release(context: dg.AssetExecutionContext, storage: RecsysStorage, release: _RankingRelease, *, keep: int):
    """Publish the file through core/publishing.py (or keep it as a rejected candidate)."""
    from recsys_assets.core.publishing import Candidate
    from recsys_assets.core.publishing import release as publish_release
    from recsys_assets.core.ranking.model import RankingModel

    model = release.model
    record = {
        "metrics": release.result.metrics,
        "config": model.params.to_dict(),
        "data": release.size.to_dict(),
        "promotion": release.promotion.describe(),
    }
    fingerprint = model.info["data_fingerprint"]
    candidate = Candidate(
        storage.RANKING_MODEL, model.save, RankingModel.load, version_record(context, record), fingerprint
    )
    outcome = publish_release(storage.store, candidate, release.publish, keep=keep, work_folder=storage.work_folder)
    log_outcome(context, storage, outcome)
    return outcome


def _log_verdict(context: dg.AssetExecutionContext, storage: RecsysStorage, release: _RankingRelease, outcome) -> None:
    verdict, target = release.result.comparison.describe(), storage.store.url(outcome.name)
    if release.publish:
        context.log.info(f"{target}: {verdict}")
        return
    why = "non-finite factors" if not release.finite else "; ".join(release.promotion.reasons) or verdict
    context.log.error(
        f"ranking model not published ({why}); saved to {target} for inspection, "
        f"the previous ranking model is unchanged ({FORCE_HINT})"
    )


def _ranking_checks(release: _RankingRelease) -> list[dg.AssetCheckResult]:
    comparison = release.result.comparison
    beats_severity = dg.AssetCheckSeverity.ERROR if comparison.loses_beyond_noise else dg.AssetCheckSeverity.WARN
    return [
        dg.AssetCheckResult(
            check_name="factors_finite",
            passed=release.finite,
            severity=dg.AssetCheckSeverity.ERROR,
            description="all factors finite" if release.finite else "NaN or infinite factors",
        ),
        dg.AssetCheckResult(
            check_name="beats_most_popular",
            passed=comparison.beats,
            severity=beats_severity,
            description=comparison.describe(),
            metadata={
                "ndcg_at_10": round(comparison.ndcg, 4),
                "most_popular_ndcg_at_10": round(comparison.baseline_ndcg, 4),
                "gap": round(comparison.gap, 4),
                "gap_standard_error": round(comparison.standard_error, 4),
            },
        ),
        promotion_check("not_worse_than_published", release.promotion),
    ]


def _ranking_metadata(
    context, storage, config: RankingConfig, release: _RankingRelease, outcome, *, fit_device, trained_on, started
):
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
        "blend_candidates": dg.MetadataValue.md(_blend_table(result.blend.candidates)),
        "item_item": dg.MetadataValue.text(result.published_item_item.method if result.published_item_item else "none"),
        **{name: dg.MetadataValue.float(round(float(value), 4)) for name, value in result.metrics.items()},
    }


def ranking_promotion(
    current: "RankingModel | None",
    result: "RankingTraining",
    train: "Ratings",
    val: "Ratings",
    *,
    users,
    movies,
    size: DataSize,
    policy: PromotionPolicy,
    threshold: float,
    unrelated: str | None = None,
) -> Promotion:
    """The promotion decision against the published ranking model (core/publishing.py's one rule): the published
    fits on the published model's held-back ratings, the held-out fits (training split only) on fresh validation
    ratings, each model as the blend it chose."""
    from recsys_assets.core.publishing import judge
    from recsys_assets.core.ranking import UserItems
    from recsys_assets.core.ranking.evaluate import fresh_ndcg_evidence, heldback_ndcg_evidence

    if current is None:
        return judge(size, None, [], policy)
    published = DataSize(len(current.users), len(current.movies), current.seen.nnz)
    evidence = []
    if unrelated is None:
        if current.heldback is not None and len(current.heldback):
            evidence.append(
                heldback_ndcg_evidence(
                    current,
                    result.published_ranker,
                    result.published_seen,
                    users,
                    movies,
                    current.heldback,
                    threshold=threshold,
                )
            )
        seen = UserItems.from_pairs(train.users, train.movies, len(users), len(movies), train.ratings)
        candidate = result.evaluation_ranker(seen)
        evidence.append(fresh_ndcg_evidence(current.held_out(), candidate, users, movies, val, threshold=threshold))
    return judge(size, published, evidence, policy, unrelated=unrelated)
