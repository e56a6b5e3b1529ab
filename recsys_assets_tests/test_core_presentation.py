"""core/presentation.py: titles read from movies.csv, cleaned of characters that reorder or hide text, and
written into the UI's markdown as literal text."""

import logging
import re
from pathlib import Path

import pandas as pd
import pytest

from recsys_assets.core.presentation import clean_text, markdown_cell, markdown_table, read_titles

HOSTILE = "Alpha | Beta ![x](http://e/x.png) *bold* <b>hi</b> `code` [link](http://e) _u_ #1 (2001)"


def _cells(line: str) -> list[str]:
    """The cells of one markdown table row: split at the pipes that are not backslash-escaped."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def test_a_hostile_title_renders_as_one_literal_cell():
    frame = pd.DataFrame({"rank": [1, 2], "movie_id": [318, 296], "title": [HOSTILE, "Pulp Fiction (1994)"]})
    frame["reason"] = ["because you rated " + HOSTILE, ""]
    table = markdown_table(frame)
    lines = table.splitlines()
    assert len(lines) == 4 and all(len(_cells(line)) == 4 for line in lines)  # no column shifted
    assert "![" not in table and "](" not in table and "http://" not in table and "<b>" not in table
    assert _cells(lines[2])[:2] == ["1", "318"]  # numbers stay numbers
    markdown_it = pytest.importorskip("markdown_it")
    html = markdown_it.MarkdownIt("commonmark").enable("table").render(table)
    assert "<img" not in html and "<a " not in html and "<em>" not in html and "<code>" not in html
    assert "<b>" not in html and "<h1" not in html and html.count("<tr>") == 3 and html.count("<td") == 8
    assert "Alpha | Beta ![x](http://e/x.png) *bold* &lt;b&gt;hi&lt;/b&gt;" in html  # the title, literally


def test_markdown_cell_is_one_line_of_literal_text():
    assert markdown_cell("a\nb\r\n| c") == "a b \\| c"
    assert markdown_cell("# heading") == "\\# heading"
    assert markdown_cell(r"back\slash") == r"back\\slash"
    assert markdown_table(pd.DataFrame({"title": [None, "1984"]})).splitlines()[-1].strip() == "| 1984    |"


@pytest.mark.parametrize("char", ["\u202e", "\u202d", "\u200b", "\u200d", "\u2066", "\u2069", "\ufeff", "\u00ad"])
def test_clean_text_drops_bidi_and_zero_width_characters(char):
    assert clean_text(f"evil{char}txt.exe\x1b[31m\x85\x7f") == "eviltxt.exe[31m"


def test_clean_text_keeps_printable_text_and_turns_separators_into_spaces():
    assert clean_text("Amélie (2001) 千と千尋 \u00a0ok") == "Amélie (2001) 千と千尋 \u00a0ok"
    assert clean_text("one\u2028two\u2029three\ud800") == "one two three"


def test_read_titles_skips_only_the_bad_rows_and_says_how_many(tmp_path: Path, caplog):
    movies = tmp_path / "movies.csv"
    movies.write_text(
        "movieId,title,genres\n"
        '318,"Shawshank Redemption, The (1994)",Drama\n'
        "abc,Broken (2000),Drama\n"
        '296,"Pulp \u202eFiction\u200b (1994)",Crime\n'
        "9223372036854775807,Largest id (2020),Drama\n"
        "12,,Drama\n"
    )
    with caplog.at_level(logging.WARNING, logger="recsys_assets.core.presentation"):
        titles = read_titles(movies)
    assert titles is not None
    assert titles.to_dict() == {
        318: "Shawshank Redemption, The (1994)",
        296: "Pulp Fiction (1994)",
        2**63 - 1: "Largest id (2020)",
    }
    assert titles.attrs["skipped_rows"] == 2
    assert "skipped 2 of 5 rows" in caplog.text
    assert titles.get(318) == "Shawshank Redemption, The (1994)"  # looked up by integer id, as the callers do


def test_the_assets_markdown_tables_escape_their_cells():
    """defs/ writes no markdown table of its own from a frame: every one goes through markdown_table."""
    defs = Path(__file__).parents[1] / "recsys_assets" / "defs"
    assert not [path.name for path in defs.glob("*.py") if ".to_markdown(" in path.read_text()]
    assert "markdown_table(preview)" in (defs / "evaluation.py").read_text()
