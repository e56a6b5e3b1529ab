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
