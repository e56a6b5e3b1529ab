"""scripts/run_pipeline.sh itself, fast: the real script in a copy of the repo's layout, with `setup.sh`, `dg`
and `recsys` stubbed (the settings writer and the run summary are the real ones)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import REPO_ROOT

RUN_LINE = (
    "2026-12-07 18:00:00 +0000 - dagster - DEBUG - __ASSET_JOB - 0123abcd-0123-4567-89ab-0123456789ab - 1 - "
    "RUN_SUCCESS - Finished execution of run."
)


def _layout(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    for name in ("run_pipeline.sh", "local_env.sh"):
        shutil.copy(REPO_ROOT / "scripts" / name, repo / "scripts" / name)
    (repo / "scripts" / "setup.sh").write_text("#!/usr/bin/env bash\n")
    shutil.copytree(REPO_ROOT / "deploy" / "local", repo / "deploy" / "local")
    bin_dir = repo / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
    (bin_dir / "recsys").write_text('#!/usr/bin/env bash\necho "recsys $*" >> "$RECSYS_CALLS"\n')
    (bin_dir / "dg").write_text(f"#!/usr/bin/env bash\necho '{RUN_LINE}'\n")
    for stub in ("setup.sh",):
        (repo / "scripts" / stub).chmod(0o755)
    for stub in ("recsys", "dg"):
        (bin_dir / stub).chmod(0o755)
    return repo


def _run(repo: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RECSYS_", "DAGSTER_"))}
    clean.update(PYTHONPATH=str(REPO_ROOT), RECSYS_CALLS=str(repo / "calls"), **env)
    return subprocess.run(
        ["bash", str(repo / "scripts" / "run_pipeline.sh"), *args],
        cwd=repo.parent,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_titles_file_is_kept_beside_the_export_and_the_next_steps_work_as_printed(tmp_path):
    repo = _layout(tmp_path)
    export, movies = tmp_path / "ratings.csv", tmp_path / "movies.csv"
    export.write_text("userId,movieId,rating\n1,1,4.0\n")
    movies.write_text("movieId,title\n1,Toy Story (1995)\n")
    proc = _run(repo, "--movies", str(movies), RECSYS_EXPORT_PATH=str(export))
    assert proc.returncode == 0, proc.stderr
    saved = (repo / "recsys.env").read_text()
    assert f"RECSYS_EXPORT_PATH={export}" in saved and f"RECSYS_MOVIES_PATH={movies}" in saved
    out = proc.stdout
    assert "==> run succeeded" in out and "no titles" not in out
    steps = out[out.index("==> next steps") :].splitlines()
    assert f'cd "{repo}" && source .venv/bin/activate' in steps[1] and steps[2].strip() == "recsys recommend --user 1"
    # the printed commands work as printed: activate, then recsys (the stub) from the repo
    activate = repo / ".venv" / "bin" / "activate"
    activate.write_text(f'export PATH="{repo}/.venv/bin:$PATH"\n')
    follow = subprocess.run(
        ["bash", "-c", f"{steps[1].strip()} && {steps[2].strip()}"],
        env={**os.environ, "RECSYS_CALLS": str(repo / "calls")},
        capture_output=True,
        text=True,
    )
    assert follow.returncode == 0, follow.stderr
    assert (repo / "calls").read_text().splitlines()[-1] == "recsys recommend --user 1"
    # a later run without --movies keeps the titles from recsys.env and says nothing about them
    proc = _run(repo)
    assert proc.returncode == 0 and "no titles" not in proc.stdout, proc.stderr


def test_a_run_without_titles_says_once_how_to_add_them_and_a_missing_file_is_refused(tmp_path):
    repo = _layout(tmp_path)
    proc = _run(repo)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("--movies path/to/movies.csv") == 1
    proc = _run(repo, "--movies", str(tmp_path / "nope.csv"))
    assert proc.returncode == 2 and f"RECSYS_MOVIES_PATH={tmp_path / 'nope.csv'} does not exist" in proc.stderr
    proc = _run(repo, "--movies")
    assert proc.returncode == 2 and "--movies needs a path" in proc.stderr
