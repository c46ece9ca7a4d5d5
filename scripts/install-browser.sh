#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium and its matching chromedriver, used by
# tests/e2e/test_ui_browser.py (Selenium drives /usr/bin/chromium via /usr/bin/chromedriver).
# Runs as root (or through sudo when it is available); does nothing if both are present.
set -euo pipefail

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    echo "chromium and chromedriver already installed"
    exit 0
fi

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-browser.sh: needs root (or sudo) to run apt-get" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y chromium chromium-driver

/usr/bin/chromium --version
/usr/bin/chromedriver --version
