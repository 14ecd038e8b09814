#!/usr/bin/env bash
# Install what the browser test (tests/test_app_browser.py) needs: Debian's chromium,
# the playwright Python package (its own browser downloads are never used) and the
# optional mask-drawing component the test draws with (spl-sdk[draw]).
# Idempotent: does nothing when all are already there.
# Another apt or dpkg run (unattended upgrades on a fresh CI machine) may hold apt's locks:
# this waits for them, up to SPL_APT_LOCK_TIMEOUT seconds (default 600), instead of failing.
set -euo pipefail

CHROMIUM=${SPL_CHROMIUM:-/usr/bin/chromium}
LOCK_TIMEOUT=${SPL_APT_LOCK_TIMEOUT:-600}

# apt-get with dpkg's lock timeout; `apt-get update` ignores that option for the lists lock
# (apt 2.6), so a run that fails on a held lock is retried until the timeout
apt_wait() {
    local deadline=$((SECONDS + LOCK_TIMEOUT)) out
    while true; do
        if out=$($SUDO apt-get -o "DPkg::Lock::Timeout=$LOCK_TIMEOUT" "$@" 2>&1); then
            [ -z "$out" ] || printf '%s\n' "$out"
            return 0
        fi
        if grep -q "Could not get lock\|Unable to lock\|Unable to acquire the dpkg" <<<"$out" \
                && [ "$SECONDS" -lt "$deadline" ]; then
            echo "waiting for another apt run to release its lock..." >&2
            sleep "${SPL_APT_RETRY_SECONDS:-5}"
            continue
        fi
        printf '%s\n' "$out" >&2
        return 1
    done
}

if [ ! -x "$CHROMIUM" ]; then
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    export DEBIAN_FRONTEND=noninteractive
    apt_wait update -qq
    apt_wait install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi

missing=()
python -c "import playwright.sync_api" 2>/dev/null || missing+=("playwright>=1.45")
python -c "import importlib.util as u, sys; sys.exit(u.find_spec('streamlit_drawable_canvas') is None)" \
    || missing+=("streamlit-drawable-canvas>=0.10")
if [ ${#missing[@]} -gt 0 ]; then
    python -m pip install --quiet --disable-pip-version-check "${missing[@]}"
fi

"$CHROMIUM" --version
python -c "import importlib.metadata as m; print(*(f'{p} {m.version(p)}' for p in ('playwright', 'streamlit-drawable-canvas')), sep='; ')"
