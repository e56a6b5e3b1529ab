"""user_recommendations with a hostile movies.csv: its preview keeps one title per cell, as literal text, and
a bad row costs only itself (core/presentation.py's read_titles and markdown_table, reached from defs/)."""

import re

import dagster as dg
import pandas as pd

from recsys_assets.defs.evaluation import user_recommendations
from recsys_assets.defs.resources import RecsysStorage, resources_for

from .model_files import ranked_pair


def test_user_recommendations_preview_escapes_titles_and_skips_only_bad_rows(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _, _, _, movie_ids = ranked_pair(data)
    movies = tmp_path / "movies.csv"
    rows = [f'{m},"Movie {m} | x ![x](http://e/x.png) \u202e<b>y</b>",Drama' for m in movie_ids]
    movies.write_text("movieId,title,genres\n" + "\n".join([*rows, "abc,Broken,Drama"]) + "\n")
    storage = RecsysStorage(export_path=str(tmp_path / "none.csv"), data_dir=str(data), movies_path=str(movies))
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([user_recommendations], resources=resources_for(storage), instance=instance)
    assert result.success
    preview = result.get_asset_materialization_events()[0].materialization.metadata["preview"].value
    lines = preview.splitlines()
    widths = {len(re.split(r"(?<!\\)\|", line)) for line in lines}
    assert len(widths) == 1 and len(lines) > 3  # every row as wide as the header: no cell split at a "|"
    assert "![" not in preview and "](" not in preview and "<b>" not in preview and "\u202e" not in preview
    recs = pd.read_parquet(data / "tables" / "user_recommendations.parquet")
    assert recs["title"].notna().all() and recs["title"].str.startswith("Movie ").all()  # the bad row cost only itself
    logged = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any("skipped 1 rows without an integer movieId or a title" in message for message in logged)
