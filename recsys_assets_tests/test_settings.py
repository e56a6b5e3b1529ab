"""settings.py is the one owner of the environment: its values, its errors and the README's table."""

import re
from pathlib import Path

import pytest

from recsys_assets import settings

ROOT = Path(__file__).resolve().parents[1]


def test_a_setting_reads_the_environment_and_falls_back_to_its_default():
    s = settings.Setting("RECSYS_X", "7", "a test setting")
    assert s.get({}) == "7" and s.get({"RECSYS_X": "  "}) == "7" and s.get({"RECSYS_X": " 9 "}) == "9"
    assert s.integer({"RECSYS_X": "3"}) == 3 and not s.is_set({}) and s.is_set({"RECSYS_X": "1"})
    assert settings.Setting("RECSYS_F", "", "").flag({"RECSYS_F": "Yes"})
    with pytest.raises(ValueError, match="RECSYS_X must be a whole number, got 'many'"):
        s.integer({"RECSYS_X": "many"})
    with pytest.raises(ValueError, match="RECSYS_X must be at least 1, got 0"):
        s.integer({"RECSYS_X": "0"})


def test_the_readme_table_is_generated_from_the_settings():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- settings:start -->\n", 1)[1].split("\n<!-- settings:end -->", 1)[0]
    assert block == settings.markdown_table(), (
        "README's settings table is stale: run `python -m benchmarks.readme_blocks settings`"
    )


def test_every_variable_the_code_names_is_a_setting():
    """A RECSYS_* name anywhere in the package or the scripts must be declared in settings.py."""
    declared = {s.name for s in settings.SETTINGS}
    sources = [
        *(ROOT / "recsys_assets").rglob("*.py"),
        *(ROOT / "scripts").glob("*.sh"),
        *(ROOT / "deploy").rglob("*.y*ml"),
    ]
    named = set()
    for path in sources:
        named |= set(re.findall(r"\bRECSYS_[A-Z_]+[A-Z]\b", path.read_text()))
    extra = named - declared - {"RECSYS_IMAGE"}  # RECSYS_IMAGE: the Helm values' image name, not read by Python
    assert not extra, f"environment variables used but not declared in settings.py: {sorted(extra)}"


def test_only_settings_py_reads_the_environment_for_recsys_variables():
    direct = re.compile(r"""(environ\.get\(|environ\[|getenv\()\s*["']RECSYS_""")
    assert direct.search('os.environ.get("RECSYS_DATA_DIR")')  # the pattern finds a direct read
    offenders = [
        p.name
        for p in (ROOT / "recsys_assets").rglob("*.py")
        if p.name != "settings.py" and direct.search(p.read_text())
    ]
    assert not offenders, f"read RECSYS_* through recsys_assets.settings instead: {offenders}"
