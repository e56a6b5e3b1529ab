"""Rewrite a generated block of the docs: the text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``.

The benchmark scripts regenerate their figures into the docs this way, so a figure there is always
the output of the last run of the script that names it. Each block has one home, ``BLOCK_FILES``
(the docs site's pages, built by ``mkdocs build``); a call that names a file (``benchmarks/README.md``,
the per-script detail) writes there instead.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
BLOCK_FILES = {  # block name -> the page that holds it
    "settings": DOCS / "guide" / "configuration.md",
    "cli_examples": DOCS / "guide" / "recommendations.md",
    "bench_local_run": DOCS / "benchmarks" / "index.md",
    "bench_ranking": DOCS / "benchmarks" / "index.md",
    "bench_ranking_scale": DOCS / "benchmarks" / "index.md",
    "bench_training": DOCS / "benchmarks" / "index.md",
    "bench_serve": DOCS / "benchmarks" / "index.md",
    "bench_cli": DOCS / "benchmarks" / "index.md",
    "bench_similar": DOCS / "benchmarks" / "index.md",
    "bench_celery": DOCS / "benchmarks" / "index.md",
    "bench_random_exposure": DOCS / "benchmarks" / "index.md",
}


def block_file(name: str) -> Path:
    """The page that holds block ``name`` (README.md for a block no page holds)."""
    return BLOCK_FILES.get(name, README)


def read_block(name: str, readme: Path | None = None) -> str:
    """The current text of block ``name``, without its markers (for the tests that check a block is current)."""
    content = (readme or block_file(name)).read_text()
    return content.split(f"<!-- {name}:start -->\n", 1)[1].split(f"\n<!-- {name}:end -->", 1)[0]


def replace_block(name: str, text: str, readme: Path | None = None) -> bool:
    readme = readme or block_file(name)
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    content = readme.read_text()
    if start not in content or end not in content:
        print(f"{readme.relative_to(ROOT)} has no {start} ... {end} block; not updated")
        return False
    head, rest = content.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{text.rstrip()}\n{end}{tail}")
    print(f"{readme.relative_to(ROOT)}: {name} block updated")
    return True


def settings_table() -> str:
    """The docs' table of environment variables, from ``recsys_assets/settings.py``."""
    from recsys_assets.settings import markdown_table

    return markdown_table()


GENERATED = {"settings": settings_table}  # blocks generated from the code rather than by a benchmark run

if __name__ == "__main__":  # python -m benchmarks.readme_blocks settings
    import sys

    for block in sys.argv[1:] or sorted(GENERATED):
        replace_block(block, GENERATED[block]())
