"""settings.py is the one owner of the environment: its values, its errors and the docs' table."""

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

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


def test_the_docs_table_is_generated_from_the_settings():
    from benchmarks.readme_blocks import block_file, read_block

    assert block_file("settings") == ROOT / "docs" / "guide" / "configuration.md"
    assert read_block("settings") == settings.markdown_table(), (
        "docs/guide/configuration.md's settings table is stale: run `python -m benchmarks.readme_blocks settings`"
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


def test_the_settings_file_fills_what_the_environment_does_not_set(tmp_path):
    path = tmp_path / "recsys.env"
    path.write_text(
        "# where the real export lives\n\nexport RECSYS_EXPORT_PATH='/srv/exports/ratings.csv'\n"
        'RECSYS_SENSOR_INTERVAL = "5"\nRECSYS_DATA_DIR=data\n'
    )
    values = settings.read_file(path)
    assert values == {
        "RECSYS_EXPORT_PATH": "/srv/exports/ratings.csv",
        "RECSYS_SENSOR_INTERVAL": "5",
        "RECSYS_DATA_DIR": "data",
    }
    environ = {"RECSYS_SETTINGS_FILE": str(path), "RECSYS_DATA_DIR": "/elsewhere", "RECSYS_SENSOR_INTERVAL": " "}
    taken = settings.apply_file(environ)
    assert taken == {"RECSYS_EXPORT_PATH": "/srv/exports/ratings.csv", "RECSYS_SENSOR_INTERVAL": "5"}
    assert environ["RECSYS_DATA_DIR"] == "/elsewhere"  # the environment wins
    assert settings.apply_file({"RECSYS_SETTINGS_FILE": str(tmp_path / "none.env")}) == {}
    settings.write_value("RECSYS_SENSOR_INTERVAL", "9", path)
    settings.write_value("RECSYS_MOVIES_PATH", "/a b/movies.csv", path)
    assert settings.read_file(path) == {
        **values,
        "RECSYS_SENSOR_INTERVAL": "9",
        "RECSYS_MOVIES_PATH": "/a b/movies.csv",
    }
    assert path.read_text().startswith("# where the real export lives\n")  # other lines kept
    path.write_text("RECSYS_EXPORT_PATH=x\nRECSYS_EXPORTPATH=y\n")
    with pytest.raises(ValueError, match=r"recsys.env:2: unknown setting RECSYS_EXPORTPATH"):
        settings.read_file(path)
    with pytest.raises(ValueError, match="unknown setting"):
        settings.write_value("RECSYS_NOPE", "1", path)


def _run(args: list[str], env: dict, **kwargs):
    import os
    import subprocess

    return subprocess.run(args, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, **kwargs)


def test_recsys_the_code_location_and_the_scripts_read_the_settings_file(tmp_path, model_file):
    import sys

    path = tmp_path / "recsys.env"
    path.write_text(f"RECSYS_SENSOR_INTERVAL=7\nRECSYS_DATA_DIR={model_file.parent}\n")
    env = {"RECSYS_SETTINGS_FILE": str(path)}
    proc = _run([sys.executable, "-m", "recsys_assets.cli", "metrics"], env)  # the model in the file's data dir
    assert proc.returncode == 0 and "validation RMSE 1.0000" in proc.stdout, proc.stderr
    code = "from recsys_assets.defs import automation; print(automation.new_export_sensor.minimum_interval_seconds)"
    assert _run([sys.executable, "-c", code], env).stdout.strip() == "7"  # what `dg` loads
    script = ". scripts/local_env.sh && echo $RECSYS_SENSOR_INTERVAL $DAGSTER_HOME"
    env_sh = {**env, "DAGSTER_HOME": str(tmp_path / "home"), "RECSYS_DROP_DIR": str(tmp_path / "drop")}
    proc = _run(["bash", "-c", script], env_sh)
    assert proc.returncode == 0 and proc.stdout.split() == ["7", str(tmp_path / "home")], proc.stderr
    assert _run(["bash", "-c", script], {**env_sh, "RECSYS_SENSOR_INTERVAL": "3"}).stdout.split()[0] == "3"
    path.write_text("RECSYS_SENSOR_INTERVAL=7\nnot a setting\n")
    proc = _run([sys.executable, "-m", "recsys_assets.cli", "metrics"], env)
    assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0 and "recsys.env:2" in proc.stderr
    assert _run(["bash", "-c", script], env_sh).returncode != 0  # the scripts stop at a malformed file


# values a settings file must keep exactly: quotes, shell syntax, comment marks, spaces, Unicode
TRICKY = [
    "/data/o'brien/ratings.csv",
    "it's 'quoted' and \"double\" and `ticked`",
    "C:\\exports\\new\\ratings.csv",
    "\\'",
    "$HOME ${RECSYS_DATA_DIR} $(touch /tmp/owned) `id` !!",
    "#not a comment",
    "s3://bucket/a#b ; rm -rf / | cat & echo > x < y",
    "  leading and trailing spaces  ",
    "*?[a-z]~{a,b}",
    "--flag=-n",
    "Amélie ünïcödé 日本語 🎬 \u00a0nbsp\u202eRTL",
    "'",
    '"',
    "''\"\"",
    "=",
]


def _names(count: int) -> list[str]:
    names = [s.name for s in settings.SETTINGS if s.name.startswith("RECSYS_") and s is not settings.SETTINGS_FILE]
    assert len(names) >= count
    return names[:count]


def _sourced(path: Path, names: list[str]) -> list[str]:
    """The values bash holds after `eval` of `python -m recsys_assets.settings --shell` (as local_env.sh does)."""
    import subprocess
    import sys

    script = f'eval "$("{sys.executable}" -m recsys_assets.settings --shell)" && printf "%s\\0" ' + " ".join(
        f'"${name}"' for name in names
    )
    env = {**__import__("os").environ, "RECSYS_SETTINGS_FILE": str(path)}
    proc = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode("utf-8").split("\0")[:-1]


def test_every_value_round_trips_through_set_the_reader_and_bash(tmp_path):
    """`--set NAME=value`, then the module's reader and bash sourcing the `--shell` lines give the value back."""
    path = tmp_path / "recsys.env"
    path.write_text("# mine\n")
    names = _names(len(TRICKY))
    for name, value in zip(names, TRICKY, strict=True):
        proc = _run(
            [__import__("sys").executable, "-m", "recsys_assets.settings", "--set", f"{name}={value}"],
            {"RECSYS_SETTINGS_FILE": str(path)},
        )
        assert proc.returncode == 0, proc.stderr
    assert settings.read_file(path) == dict(zip(names, TRICKY, strict=True))
    assert _sourced(path, names) == TRICKY
    assert path.read_text(encoding="utf-8").startswith("# mine\n")
    # the scripts' own path: local_env.sh exports an apostrophe path whole (it used to arrive garbled)
    script = ". scripts/local_env.sh && printf '%s' \"$RECSYS_EXPORT_PATH\""
    path.write_text("")
    settings.write_value("RECSYS_EXPORT_PATH", TRICKY[0], path)
    env = {"RECSYS_SETTINGS_FILE": str(path), "DAGSTER_HOME": str(tmp_path / "h"), "RECSYS_DROP_DIR": str(tmp_path)}
    proc = _run(["bash", "-c", script], env)
    assert proc.returncode == 0 and proc.stdout == TRICKY[0], proc.stderr


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.lists(
        st.text(alphabet=st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp"))), min_size=1, max_size=4
    )
)
def test_any_printable_value_round_trips(tmp_path, values):
    path = tmp_path / "recsys.env"
    path.write_text("")
    names = _names(len(values))
    for name, value in zip(names, values, strict=True):
        settings.write_value(name, value, path)
    assert settings.read_file(path) == dict(zip(names, values, strict=True))
    lines = settings.shell_lines(dict(zip(names, values, strict=True)))
    assert lines.count("\n") == len(values) and all(line.startswith("export RECSYS_") for line in lines.splitlines())


def test_bash_reads_random_values_as_written(tmp_path):
    """The same property through bash: 40 random printable values in one file, one `eval`."""
    import random

    rng = random.Random(3)
    alphabet = [chr(c) for c in range(0x20, 0x7F)] + list("éü日本🎬\u00a0\u2003\u200b\ufeff")
    names = _names(20)
    for batch in range(2):
        path = tmp_path / f"recsys{batch}.env"
        values = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 30))) for _ in names]
        for name, value in zip(names, values, strict=True):
            settings.write_value(name, value, path)
        assert settings.read_file(path) == dict(zip(names, values, strict=True))
        assert _sourced(path, names) == values


@pytest.mark.parametrize("bad", ["\n", "\r", "\x00", "\t", "\x1b[31m", "\x7f", "\x85", "\x9b", "\u2028", "\u2029"])
def test_control_characters_are_refused_and_nothing_is_written(tmp_path, bad):
    path = tmp_path / "recsys.env"
    path.write_text("RECSYS_DATA_DIR=data\n")
    with pytest.raises(ValueError, match=r"^RECSYS_EXPORT_PATH: a value may not hold control characters") as info:
        settings.write_value("RECSYS_EXPORT_PATH", f"/x{bad}RECSYS_FORCE_PUBLISH=1", path)
    assert "\n" not in str(info.value) and path.read_text() == "RECSYS_DATA_DIR=data\n"
    path.write_text(f"RECSYS_DATA_DIR=data\nRECSYS_EXPORT_PATH='/x{bad}y'\n", encoding="utf-8")  # by hand
    if bad != "\n":  # (a newline in the file is a new line: "y'" then fails as not a NAME=value line)
        with pytest.raises(ValueError, match=r"recsys.env:2: RECSYS_EXPORT_PATH: a value may not hold control"):
            settings.read_file(path)
    with pytest.raises(ValueError, match="may not hold control characters"):
        settings.shell_lines({"RECSYS_EXPORT_PATH": f"a{bad}b"})


def test_set_refuses_a_newline_in_one_line_and_leaves_the_file_as_it_was(tmp_path):
    """`--set` with a newline used to write a second setting (here: switching forced publishing on)."""
    import sys

    path = tmp_path / "recsys.env"
    path.write_text("# kept\nRECSYS_DATA_DIR=data\n")
    before = path.read_bytes()
    value = "RECSYS_EXPORT_PATH=/data/ratings.csv\nRECSYS_FORCE_PUBLISH=1"
    proc = _run([sys.executable, "-m", "recsys_assets.settings", "--set", value], {"RECSYS_SETTINGS_FILE": str(path)})
    assert proc.returncode == 1 and proc.stdout == "", proc.stdout
    assert proc.stderr.startswith("error: RECSYS_EXPORT_PATH: a value may not hold control characters")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert path.read_bytes() == before
    assert "RECSYS_FORCE_PUBLISH" not in settings.read_file(path)


def test_hand_written_quoting_reads_as_a_shell_would(tmp_path):
    path = tmp_path / "recsys.env"
    path.write_text(
        "RECSYS_EXPORT_PATH='/data/o'\\''brien.csv'   # a shell-style quote, then a comment\n"
        'RECSYS_MOVIES_PATH="/a \\"b\\" \\\\c $HOME"\n'
        "RECSYS_DATA_DIR=s3://bucket/a#b c\n"  # unquoted: as written, '#' and spaces included
    )
    assert settings.read_file(path) == {
        "RECSYS_EXPORT_PATH": "/data/o'brien.csv",
        "RECSYS_MOVIES_PATH": '/a "b" \\c $HOME',
        "RECSYS_DATA_DIR": "s3://bucket/a#b c",
    }
    for line, reason in [
        ("RECSYS_DATA_DIR='open", "a quote is not closed"),
        ("RECSYS_DATA_DIR='a' b", "a quoted value must be one word"),
    ]:
        path.write_text(line + "\n")
        with pytest.raises(ValueError, match=rf"recsys.env:1: {reason}"):
            settings.read_file(path)
