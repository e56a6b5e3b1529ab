"""``model_versions``: the kept model versions as a table in the UI (``recsys models`` on the command line)."""

import dagster as dg

from recsys_assets.core.release.versions_table import COLUMNS, version_rows
from recsys_assets.defs.owners import OWNERS
from recsys_assets.defs.ranking import ranking_model
from recsys_assets.defs.resources import RecsysStorage
from recsys_assets.defs.training import recommendation_model

_TYPES = {"published": "bool", "value": "float", "users": "int", "ratings": "int"}


@dg.asset(deps=[recommendation_model, ranking_model], group_name="evaluation", kinds={"table"}, owners=OWNERS)
def model_versions(storage: RecsysStorage) -> dg.MaterializeResult:
    """The kept versions of both models, newest first: which one is published, its validation figure
    (RMSE or NDCG@10), its data size, the export it was trained from and its run. Shown as a table on
    this page; `recsys rollback VERSION` publishes a kept one again."""
    rows = version_rows(storage.store)
    schema = dg.TableSchema(columns=[dg.TableColumn(c, _TYPES.get(c, "string")) for c in COLUMNS])
    records = [dg.TableRecord({k: v for k, v in row.items() if v is not None}) for row in rows]
    published = {row["model"]: row["version"] for row in rows if row["published"]}
    return dg.MaterializeResult(
        metadata={
            "versions": dg.MetadataValue.table(records, schema=schema),
            "published_rating": dg.MetadataValue.text(published.get("rating", "none")),
            "published_ranking": dg.MetadataValue.text(published.get("ranking", "none")),
            "kept": dg.MetadataValue.int(len(rows)),
        }
    )
