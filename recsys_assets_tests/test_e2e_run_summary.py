"""scripts/run_pipeline.sh's readable output: a real `dg launch` piped through recsys_assets.run_summary (its
kept log also shows `dg launch` materializing every asset without a warning)."""

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO_ROOT
from .test_e2e_dg import ASSET_KEYS, BIN, SHORT_TRAINING, _env, _materialized, _warning_lines

pytestmark = pytest.mark.e2e


def _launch(env: dict, log, *extra: str) -> subprocess.CompletedProcess:
    """`dg launch --assets '*'` through the filter, as the script runs it (pipefail: dg's exit status)."""
    command = (
        f"set -o pipefail; {BIN / 'dg'} launch --assets '*' {' '.join(extra)} 2>&1 "
        f"| {sys.executable} -m recsys_assets.run_summary --log {log}"
    )
    return subprocess.run(["bash", "-c", command], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_a_run_prints_one_line_per_step_and_a_failed_run_ends_with_its_reason(tmp_path, tiny_export):
    env = _env(tmp_path, tiny_export, tmp_path / "data")
    proc = _launch(env, tmp_path / "ok.log", "--config-json", f"'{SHORT_TRAINING}'")
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and lines[-1].startswith("==> run succeeded"), proc.stdout + proc.stderr
    assert len(lines) <= 15 and any(line.split()[:2] == ["recommendation_model", "ok"] for line in lines)
    assert " checks" in next(line for line in lines if "recommendation_model" in line)
    assert (tmp_path / "ok.log").read_text().count("DEBUG") > 50  # the whole log is kept
    # the log the summary keeps is dg launch's own: every asset materialized, not one warning
    assert _warning_lines((tmp_path / "ok.log").read_text()) == []
    assert _materialized(Path(env["DAGSTER_HOME"])) == ASSET_KEYS
    assert (tmp_path / "data" / "recommendation_model.pth").exists() and (
        tmp_path / "data" / "ranking_model.pth"
    ).exists()
    bad = tmp_path / "bad.csv"
    bad.write_text("userId,movieId,rating\n1,2\n")
    proc = _launch({**env, "RECSYS_EXPORT_PATH": str(bad)}, tmp_path / "bad.log")
    assert proc.returncode != 0
    assert proc.stdout.splitlines()[-2].startswith("==> run failed at cleaned_ratings")
    reason = proc.stdout.splitlines()[-1]
    assert reason.startswith("    reason: DataQualityError:") and "malformed_line (expected 3 fields)" in reason
    assert "Materialization failed" not in proc.stdout
