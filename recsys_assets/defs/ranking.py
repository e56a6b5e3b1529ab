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
from recsys_assets.core.ranking.exposure import MAX_EXPOSURE
from recsys_assets.core.ranking.params import FACTORS, ITEM_ITEM_METHODS, REGULARIZATION, IALSParams, ItemItemParams
from recsys_assets.core.release.decision import DataSize
from recsys_assets.defs.executors import TRAINING_OP_TAGS
from recsys_assets.defs.owners import OWNERS
from recsys_assets.defs.publishing import PromotionConfig, load_published, log_plan, published_sample
from recsys_assets.defs.ranking_release import (
    RankingRelease,
    log_verdict,
    publish,
    ranking_checks,
    ranking_file,
    ranking_metadata,
    ranking_promotion,
)
from recsys_assets.defs.resources import DeviceResource, RecsysStorage

if TYPE_CHECKING:  # PyTorch and implicit are imported by the ranking step itself
    from recsys_assets.core.ranking.train import CandidateSettings, Ratings

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
    ease_dropout: float = Field(
        default=_ITEMS.ease_dropout,
        description="EASE's penalty also grows with each movie's own ratings as if its inputs were dropped at this "
        "rate (EDLAE; 0: plain EASE).",
    )
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
    fallback: bool = Field(
        default=True,
        description="When the chosen candidate loses to most popular on the validation split beyond noise, publish the "
        "best that does not (iALS alone, else most popular) and say why; false: publish nothing (the check blocks).",
    )
    min_ratings: bool = Field(
        default=True,
        description="Choose on the inner splits the fewest ratings a listed movie needs (1 to 20); false: any movie.",
    )
    max_exposure: float = Field(
        default=MAX_EXPOSURE,
        gt=0,
        le=1,
        description="The largest share of the users whose lists may show one movie: past it the movie is left out "
        "of the lists of the users who rank it lowest (never moved); 1 turns it off. docs/guide/recommendations.md "
        "shows what each value costs and gains (model_evaluation's curve).",
    )
    diversity: float = Field(
        default=1.0,
        description="The popularity penalty one step below the largest whose NDCG@10 on the inner splits stays "
        "within this many standard errors of the best candidate's (more movies of the catalogue reach the lists); "
        "0 turns it off.",
    )

    def candidates(self) -> "CandidateSettings":
        """The candidates train_ranking_model compares (settings validated here)."""
        from recsys_assets.core.ranking.train import CandidateSettings

        if not (np.isfinite(self.diversity) and self.diversity >= 0):
            raise ValueError(f"diversity must be a non-negative number, got {self.diversity}")
        items = ItemItemParams(
            method=self.item_item,
            ease_lambda=self.ease_lambda,
            ease_dropout=self.ease_dropout,
            rating_exponent=self.ease_rating_exponent,
            max_ease_items=self.max_ease_items,
            neighbours=self.neighbours,
        )
        return CandidateSettings(
            self.factors,
            self.regularization,
            items,
            self.diversity,
            blend=self.blend,
            support=self.min_ratings,
            fallback=self.fallback,
        )

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
    """The ranking model that orders recommendations (ranking_model.pth): the best of iALS, item-item,
    most popular and their blends, chosen on an inner split of the training split.

    Scored on the validation split beside most popular (the figures shown and the release's evidence),
    then refitted on training + validation for publishing. docs/design/models.md has the details.
    """
    params = config.params()  # invalid settings fail here, before any work
    candidates = config.candidates()
    policy = config.policy()
    if not (np.isfinite(config.noise_z) and config.noise_z >= 0):
        raise ValueError(f"noise_z must be a non-negative number, got {config.noise_z}")
    from recsys_assets.core.ranking.ials import ials_device  # PyTorch and implicit: once the settings are valid
    from recsys_assets.core.ranking.model import RankingModel
    from recsys_assets.core.ranking.train import train_ranking_model
    from recsys_assets.core.release.lineage import plan_against

    fit_device, note = ials_device(device.torch_device(), explicit=device.explicit)
    if note:
        context.log.info(note)
    users, movies = mappings_from_table(user_movie_mappings)
    current = load_published(context, storage, storage.RANKING_MODEL, RankingModel.load)
    plan, found = plan_against(
        train_ratings,
        val_ratings,
        users,
        movies,
        current,
        published_sample=published_sample(storage, storage.RANKING_MODEL),
    )
    log_plan(context, plan, found)
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
        model = ranking_file(result, config, plan, (users, movies), fit_device=fit_device)
        promotion = ranking_promotion(
            current,
            model,
            result,
            (data.train, data.val),
            users=users,
            movies=movies,
            size=size,
            policy=policy,
            threshold=config.relevance_threshold,
            found=found,
        )
        release = RankingRelease.of(result, promotion, size, model, found.kind)
        outcome = publish(context, storage, release, keep=config.keep_versions)
    log_verdict(context, storage, release, outcome)
    trained_on = f"train + val ({len(data.train) + len(data.val):,} ratings)"
    metadata = ranking_metadata(
        context, storage, config, release, outcome, fit_device=fit_device, trained_on=trained_on, started=started
    )
    return dg.MaterializeResult(check_results=ranking_checks(release), metadata=metadata)


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
