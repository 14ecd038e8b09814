#!/usr/bin/env bash
# Install what the browser test (tests/test_app_browser.py) needs: Debian's chromium
# and the playwright Python package (its own browser downloads are never used).
# Idempotent: does nothing when both are already there.
set -euo pipefail

if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi

if ! python -c "import playwright.sync_api" 2>/dev/null; then
    python -m pip install --quiet --disable-pip-version-check "playwright>=1.45"
fi

/usr/bin/chromium --version
python -c "import importlib.metadata as m; print('playwright', m.version('playwright'))"
