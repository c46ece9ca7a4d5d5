#!/usr/bin/env bash
# Create (or reuse) one venv per client library under $SLUICE_COMPAT_DIR (default
# ~/.cache/sluice/compat). A venv is rebuilt only when its requirement line changes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="${SLUICE_COMPAT_DIR:-$HOME/.cache/sluice/compat}"
py="${PY:-python3}"
only="${1:-}"
mkdir -p "$root"
grep -v '^#' "$here/libraries.txt" | while read -r name reqs; do
  [ -z "$name" ] && continue
  [ -n "$only" ] && [ "$only" != "$name" ] && continue
  venv="$root/$name"
  stamp="$venv/.sluice-reqs"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$reqs" ]; then
    continue
  fi
  echo "compat: installing $name ($reqs)" >&2
  rm -rf "$venv"
  "$py" -m venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/python" -m pip install -q --disable-pip-version-check $reqs pydantic >"$venv.log" 2>&1 \
    || { echo "compat: install of $name failed, see $venv.log" >&2; continue; }
  echo "$reqs" >"$stamp"
done
