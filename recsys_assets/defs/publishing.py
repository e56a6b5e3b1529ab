"""What the model assets share to publish safely: promotion settings, the published model, provenance.

The rule itself is plain Python in ``core/release/`` (gates, decision, registry); this module reads its
settings from the asset config, loads the live model through the release's pointer, and turns the
decision into check results and log lines.
"""

import functools
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from recsys_assets import settings
from recsys_assets.core.model_errors import ModelFileError
from recsys_assets.core.release.decision import Promotion, PromotionPolicy
from recsys_assets.defs.resources import RecsysStorage

if TYPE_CHECKING:
    from recsys_assets.core.heldback import EvaluationPlan
    from recsys_assets.core.release.candidate import Outcome
    from recsys_assets.core.release.lineage import Lineage

_POLICY = PromotionPolicy()


class PromotionConfig(dg.Config):
    """When a newly trained model may replace the published one (shared by both model assets)."""

    force_publish: bool = Field(
        default=False,
        description="Publish even when the promotion rule rejects the model (also RECSYS_FORCE_PUBLISH=1).",
    )
    min_data_ratio: float = Field(
        default=_POLICY.min_data_ratio,
        description="The new model's users, movies and ratings must each be at least this share of the "
        "published model's (0.5: an export half the size or less is refused).",
    )
    rmse_tolerance: float = Field(
        default=_POLICY.rmse_tolerance,
        description="Rating model: the share of the published model's RMSE by which its RMSE may be higher "
        "(0.01: 1%), both scored on the published model's held-back ratings and on validation ratings it never "
        "trained on; a larger gap beyond noise refuses it.",
    )
    ndcg_tolerance: float = Field(
        default=_POLICY.ndcg_tolerance,
        description="Ranking model: the share of the published model's NDCG@10 by which its NDCG@10 may be lower "
        "(0.05: 5%), on the same held-back and fresh validation ratings.",
    )
    accept_new_lineage: bool = Field(
        default=False,
        description="Publish a model of a new export lineage (no user or movie ids shared with the published "
        "model, so nothing can be compared); also RECSYS_ACCEPT_NEW_LINEAGE=1. A published demo sample is "
        "replaced without it.",
    )
    min_fresh_ratings: int = Field(
        default=_POLICY.min_fresh_ratings,
        description="Fewest ratings for a comparison with the published model (held-back or fresh); with fewer "
        "it is skipped (the data-size rule still applies).",
    )
    evidence_noise_z: float = Field(
        default=_POLICY.noise_z,
        description="A candidate is refused as worse only when its gap to the published model exceeds the "
        "tolerance by more than this many standard errors of the paired gap (noise of a small evidence set).",
    )
    keep_versions: int = Field(default=5, description="Published models kept in <data_dir>/models/ for rollback.")

    def policy(self) -> PromotionPolicy:
        """The validated rule (a NaN or out-of-range setting fails the step before any work)."""
        if self.keep_versions < 1:
            raise ValueError(f"keep_versions must be at least 1, got {self.keep_versions}")
        return PromotionPolicy(
            min_data_ratio=self.min_data_ratio,
            rmse_tolerance=self.rmse_tolerance,
            ndcg_tolerance=self.ndcg_tolerance,
            min_fresh_ratings=self.min_fresh_ratings,
            noise_z=self.evidence_noise_z,
            force=self.force_publish or settings.FORCE_PUBLISH.flag(),
            accept_new_lineage=self.accept_new_lineage or settings.ACCEPT_NEW_LINEAGE.flag(),
        ).validate()

    @classmethod
    def field_names(cls) -> set[str]:
        return set(PromotionConfig.model_fields)


def load_published(context: dg.AssetExecutionContext, storage: RecsysStorage, name: str, loader):
    """The live ``name`` (through the release's pointer) read by ``loader(path)``, or None when there is none
    or it is unreadable."""
    from recsys_assets.core.release import live

    store = storage.store
    where = live.resolve(store, name)
    if not store.exists(where):
        return None
    try:
        with store.read(where) as path:
            return loader(path)
    except ModelFileError as exc:  # a broken published file cannot veto its replacement
        context.log.warning(f"the published {name} is unreadable ({exc}); the new model is not compared with it")
        return None


def finite_check(check_name: str, finite: bool, what: str) -> dg.AssetCheckResult:
    """A model's blocking check that every one of its ``what`` (weights, factors) is finite."""
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=finite,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"all {what} finite" if finite else f"NaN or infinite {what}",
    )


def promotion_check(check_name: str, promotion: Promotion) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=promotion.publish and not promotion.forced,
        severity=dg.AssetCheckSeverity.ERROR if not promotion.publish else dg.AssetCheckSeverity.WARN,
        description=promotion.describe(),
        metadata={"forced": promotion.forced},
    )


def version_record(context: dg.AssetExecutionContext, record: dict) -> dict:
    """``record`` with what made it: the fingerprint of the export this run pinned (``defs/export_pin.py``;
    a run that did not load the export: the one behind the latest tables) and the run id (the version's JSON)."""
    from recsys_assets.defs.export_pin import pinned_export

    pin = pinned_export(context)
    return {**record, "export_fingerprint": pin.fingerprint if pin else None, "run_id": context.run.run_id}


def log_outcome(context: dg.AssetExecutionContext, storage: RecsysStorage, outcome: "Outcome") -> None:
    """Say where the candidate went (published as a version, staged for its partner, or rejected)."""
    store = storage.store
    if outcome.version:
        context.log.info(f"{outcome.name} published as {outcome.version} (kept in {store.url('models')})")
    if outcome.note:
        context.log.info(f"{store.url(outcome.name)}: {outcome.note}")


def published_sample(storage: RecsysStorage, name: str) -> bool:
    """Whether the live ``name`` was trained on the generated demo sample (its version's record says so)."""
    from recsys_assets.core.release.registry import live_record

    return bool((live_record(storage.store, name) or {}).get("sample_export"))


def sample_export(context: dg.AssetExecutionContext, storage: RecsysStorage) -> bool:
    """Whether this run's export (the one it pinned) is the generated demo sample (``recsys sample``)."""
    from recsys_assets.core.exports import is_sample_export
    from recsys_assets.defs.export_pin import pinned_export

    pin = pinned_export(context)
    return is_sample_export(pin.path if pin else storage.current_export())


def log_plan(context: dg.AssetExecutionContext, plan: "EvaluationPlan", found: "Lineage") -> None:
    """Say what the lineage and the held-back evaluation set changed about this candidate's data."""
    if found.kind in ("rekeyed", "new"):
        context.log.warning(f"the published model: {found.describe()}")
    if plan.excluded:
        context.log.info(
            f"{plan.excluded:,} ratings on the published model's held-back pairs are left out of training "
            "(they are the evidence it is judged on)"
        )
    context.log.info(f"{len(plan.heldback):,} validation ratings are held back from the published fit")


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """The installed recsys_assets version (and the git commit of a checkout, when git can tell)."""
    import subprocess
    from importlib.metadata import PackageNotFoundError, version
    from pathlib import Path

    try:
        text = version("recsys_assets")
    except PackageNotFoundError:
        text = "unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{text}+{commit}" if commit else text


def provenance(context: dg.AssetExecutionContext, config: dict) -> dict:
    """Metadata that says what made an artifact: every setting, the fingerprint of the export this run pinned
    (as in :func:`version_record`), the code version."""
    from recsys_assets.defs.export_pin import pinned_export

    values = {f"config_{name}": _rounded(value) for name, value in sorted(config.items())}
    pin = pinned_export(context)
    return {
        **values,
        "export_fingerprint": dg.MetadataValue.text(pin.fingerprint if pin else "unknown"),
        "code_version": dg.MetadataValue.text(code_version()),
    }


def _rounded(value):
    if isinstance(value, float):
        return dg.MetadataValue.float(round(value, 6))
    if isinstance(value, bool):
        return dg.MetadataValue.bool(value)
    if isinstance(value, int):
        return dg.MetadataValue.int(value)
    return dg.MetadataValue.text(str(value))
