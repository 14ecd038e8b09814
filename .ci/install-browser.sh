#!/usr/bin/env bash
# Install what the browser test (tests/test_app_browser.py) needs: Debian's chromium,
# the playwright Python package (its own browser downloads are never used) and the
# optional mask-drawing component the test draws with (spl-sdk[draw]).
# Idempotent: does nothing when all are already there.
set -euo pipefail

if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi

missing=()
python -c "import playwright.sync_api" 2>/dev/null || missing+=("playwright>=1.45")
python -c "import importlib.util as u, sys; sys.exit(u.find_spec('streamlit_drawable_canvas') is None)" \
    || missing+=("streamlit-drawable-canvas>=0.10")
if [ ${#missing[@]} -gt 0 ]; then
    python -m pip install --quiet --disable-pip-version-check "${missing[@]}"
fi

/usr/bin/chromium --version
python -c "import importlib.metadata as m; print(*(f'{p} {m.version(p)}' for p in ('playwright', 'streamlit-drawable-canvas')), sep='; ')"
