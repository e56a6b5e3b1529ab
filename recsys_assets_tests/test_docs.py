"""The documentation: a short README as the front door, and a docs site that builds with no broken link.

The README stays at most 150 lines; everything else lives under docs/ (MkDocs), whose generated
blocks (settings table, benchmark figures, CLI examples) benchmarks/readme_blocks.py rewrites in place.
"""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchmarks.readme_blocks import BLOCK_FILES, README, block_file, read_block
from recsys_assets import settings

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README_MAX_LINES = 150
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _nav_pages(nav) -> list[str]:
    pages = []
    for entry in nav:
        for value in entry.values() if isinstance(entry, dict) else [entry]:
            pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


def _anchors(markdown: Path) -> set[str]:
    """The heading ids MkDocs' toc gives a page (its default slugify: lower case, word characters, dashes)."""
    anchors = set()
    for line in markdown.read_text().splitlines():
        if m := re.match(r"#{1,6}\s+(.*)", line):
            text = re.sub(r"[^\w\s-]", "", m.group(1).replace("`", "")).strip().lower()
            anchors.add(re.sub(r"[-\s]+", "-", text))
    return anchors


def test_the_readme_is_a_front_door_of_at_most_150_lines():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move detail to a page under docs/"
    )
    for section in ("## Quickstart", "## Try it", "## Your own export", "## Troubleshooting", "## Headline figures"):
        assert section in lines, f"README.md lost its {section!r} section"


@pytest.mark.parametrize("page", ["README.md", "CONTRIBUTING.md"])
def test_the_front_pages_links_lead_to_files_and_headings_that_exist(page):
    source = ROOT / page
    broken = []
    for target in LINK.findall(source.read_text()):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (source.parent / path).resolve() if path else source
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in _anchors(linked)):
            broken.append(target)
    assert not broken, f"{page} links to what does not exist: {broken}"


def test_the_readme_settings_agree_with_settings_py():
    """The README's eight settings are a short form of the generated table: same names, same defaults."""
    generated = {}
    for row in settings.markdown_table().splitlines()[2:]:
        name, default = (cell.strip() for cell in row.strip("|").split("|")[:2])
        generated[name] = default
    readme = README.read_text().split("## The eight most-used settings", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in readme.splitlines() if line.startswith("| `")]
    assert len(rows) == 8
    for row in rows:
        name, default = (cell.strip() for cell in row.strip("|").split("|")[:2])
        assert name in generated, f"README names {name}, which settings.py does not declare"
        assert default == generated[name], f"README's default of {name} is {default}, settings.py's {generated[name]}"


def test_every_generated_block_has_one_home_under_docs():
    for name, page in BLOCK_FILES.items():
        text = page.read_text()
        assert text.count(f"<!-- {name}:start -->") == 1 and text.count(f"<!-- {name}:end -->") == 1, (
            f"{page.relative_to(ROOT)} should hold the {name} block once"
        )
        assert page.is_relative_to(DOCS) and block_file(name) == page
        assert read_block(name).strip(), f"the {name} block is empty"
    assert ":start -->" not in README.read_text(), "README.md holds no generated block: they live under docs/"


def test_every_docs_page_is_in_the_nav_and_every_nav_entry_exists():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())  # no !!python tags in this file
    nav = set(_nav_pages(config["nav"]))
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert nav == pages, f"outside the nav: {sorted(pages - nav)}; in the nav but missing: {sorted(nav - pages)}"


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None,
    reason="mkdocs is not installed: pip install -e '.[dev]' brings mkdocs, mkdocs-material and mkdocstrings",
)
def test_the_docs_site_builds_strictly(tmp_path):
    """`mkdocs build --strict`: a broken link or anchor, a page outside the nav or a bad API reference fails."""
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**_clean_env(), "NO_MKDOCS_2_WARNING": "1"},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert "WARNING" not in proc.stderr, proc.stderr[-6000:]
    site = tmp_path / "site"
    assert (site / "index.html").exists() and (site / "api" / "index.html").exists()
    api = (site / "api" / "index.html").read_text()
    assert "recommend_for_ratings" in api and "publish" in api, "the API page lost its docstrings"
    # the generated blocks reach the site
    assert "RECSYS_EXPORT_PATH" in (site / "guide" / "configuration" / "index.html").read_text()


def _clean_env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
