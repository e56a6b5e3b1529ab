"""The Dagster code location, loaded from the ``recsys_assets/defs`` folder.

``dg.load_from_defs_folder`` imports every module under ``defs/`` and collects what it defines at
module scope (assets, asset checks, jobs, sensors, schedules); a module with a ``@dg.definitions``
function contributes what that returns instead (``defs/resources.py`` supplies the resources that
way). A new asset file in ``defs/`` therefore needs no edit here. This module adds the executor,
chosen by ``RECSYS_EXECUTOR`` (``defs/executors.py``).

``dg`` finds this module through ``[tool.dg]`` in ``pyproject.toml``; ``dagster ... -m
recsys_assets.definitions`` and ``workspace.yaml`` load the same ``defs``.
"""

import warnings
from pathlib import Path

import dagster as dg

from recsys_assets.defs import evaluation, executors, features, ingest, ranking, training, versions

PACKAGE_DIR = Path(__file__).resolve().parent

# `dg launch --assets '*'` and `dagster asset materialize --select '*'` import this module, then parse
# '*' with Dagster's own selection parser, which passes AssetSelection.all a beta parameter and warns
# about that in the command's output. Only that one message is silenced, in that process.
warnings.filterwarnings(
    "ignore", message=r"Parameter `include_sources` of function `AssetSelection\.all`", category=dg.BetaWarning
)

# The asset chain in pipeline order. The code location does not read this list (it loads the defs
# folder); tests and benchmarks materialize it, or a prefix of it, in process.
ASSETS = [
    ingest.raw_ratings,
    ingest.cleaned_ratings,
    features.user_movie_mappings,
    features.rating_splits,
    training.recommendation_model,
    training.training_loss_plot,
    ranking.ranking_model,
    evaluation.user_recommendations,
    evaluation.model_evaluation,
    versions.model_versions,
]


def load_defs_folder() -> dg.Definitions:
    """Everything defined under ``recsys_assets/defs``.

    From a checkout (the project is installed editable) the folder is found through ``[tool.dg]`` in
    ``pyproject.toml``; an installed wheel has no ``pyproject.toml``, so the same folder is loaded
    from the imported package."""
    if (PACKAGE_DIR.parent / "pyproject.toml").is_file():
        return dg.load_from_defs_folder(path_within_project=PACKAGE_DIR)
    from recsys_assets import defs as defs_package

    with warnings.catch_warnings():  # load_from_defs_folder silences its internal preview calls the same way
        warnings.simplefilter("ignore", category=dg.PreviewWarning)
        return dg.ComponentTree.from_module(defs_package, PACKAGE_DIR.parent).build_defs()


def build_definitions(executor: str | None = None) -> dg.Definitions:
    """The code location; ``executor`` (default: env ``RECSYS_EXECUTOR``) is one of ``executors.EXECUTORS``."""
    executor_def = executors.executor_from_env(executor)  # an unknown name fails before anything loads
    return dg.Definitions.merge(load_defs_folder(), dg.Definitions(executor=executor_def))


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
