"""Rewrite a generated block of the README: the text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``.

The benchmark scripts regenerate their figures into the README this way, so a figure
there is always the output of the last run of the script that names it.
"""

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def replace_block(name: str, text: str, readme: Path = README) -> bool:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    content = readme.read_text()
    if start not in content or end not in content:
        print(f"{readme.name} has no {start} ... {end} block; not updated")
        return False
    head, rest = content.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{text.rstrip()}\n{end}{tail}")
    print(f"{readme.name}: {name} block updated")
    return True


def settings_table() -> str:
    """The README's table of environment variables, from ``recsys_assets/settings.py``."""
    from recsys_assets.settings import markdown_table

    return markdown_table()


GENERATED = {"settings": settings_table}  # blocks generated from the code rather than by a benchmark run

if __name__ == "__main__":  # python -m benchmarks.readme_blocks settings
    import sys

    for block in sys.argv[1:] or sorted(GENERATED):
        replace_block(block, GENERATED[block]())
