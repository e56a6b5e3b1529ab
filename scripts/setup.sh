#!/usr/bin/env bash
# Create .venv and install the project into it (idempotent: skips pip when pyproject.toml is unchanged).
# Usage: scripts/setup.sh [extra]   e.g. scripts/setup.sh dev
set -euo pipefail
cd "$(dirname "$0")/.."
extra="${1:-}"
pick_python() {
  for py in "${PYTHON:-}" python3 python3.13 python3.12 python3.11 python; do
    [ -n "$py" ] || continue
    command -v "$py" >/dev/null 2>&1 || continue
    if "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$py"; return 0
    fi
  done
  echo "error: Python 3.11 or newer is required (set PYTHON=/path/to/python3.11)" >&2
  return 1
}
if [ ! -x .venv/bin/python ]; then
  py="$(pick_python)"
  echo "==> creating .venv with $("$py" --version)"
  "$py" -m venv .venv
fi
spec="."
[ -n "$extra" ] && spec=".[$extra]"
stamp=".venv/.recsys-installed"
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16) $spec"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "==> installing recsys_assets ($spec) into .venv"
  .venv/bin/python -m pip install --disable-pip-version-check -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    # PyTorch alone first: resolved together with the dev extras, pip can backtrack to PyPI's multi-GB CUDA
    # build instead of the CPU wheel a machine offers. A torch already in .venv (a CUDA build, README) is kept.
    torch_req="$(grep -o '"torch[<>=!~][^"]*"' pyproject.toml | head -1 | tr -d '"')"
    PYTHONWARNINGS=ignore .venv/bin/python -m pip install --disable-pip-version-check -q "$torch_req" 2>&1 | grep -v "^WARNING: Location" || true
  fi
  PYTHONWARNINGS=ignore .venv/bin/python -m pip install --disable-pip-version-check -q -c constraints.txt -e "$spec" 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import recsys_assets, dagster, torch" # fail loudly if the install did not work
  echo "$want" > "$stamp"
else
  echo "==> .venv is up to date"
fi
