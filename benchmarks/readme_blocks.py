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
