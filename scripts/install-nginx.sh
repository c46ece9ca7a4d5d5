#!/usr/bin/env bash
# nginx, for the scale-out test (two gateway replicas behind a load balancer). Best effort:
# the test skips itself when nginx is missing.
set -u
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  echo "installing nginx"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light) \
    >/dev/null 2>&1 || echo "warning: could not install nginx (the scale-out test will skip)"
fi
exit 0
