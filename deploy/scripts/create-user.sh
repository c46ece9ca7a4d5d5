#!/usr/bin/env bash
# Runtime stage: the unprivileged user the gateway runs as, and its state directory.
# Usage: create-user.sh NAME UID STATE_DIR
set -euo pipefail
name=${1:?name}; uid=${2:?uid}; state=${3:?state dir}
if ! id -u "$name" >/dev/null 2>&1; then
  groupadd --system --gid "$uid" "$name"
  useradd --system --uid "$uid" --gid "$uid" --home-dir "$state" --shell /usr/sbin/nologin "$name"
fi
mkdir -p "$state" /etc/sluice
chown "$uid:$uid" "$state"
