""".ci/install-browser.sh waits for another apt run's lock instead of failing at once."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "install-browser.sh"

# a stand-in apt-get: the lock is held for the first LOCKED calls, then it "installs" chromium
FAKE_APT = """#!/usr/bin/env bash
echo "$@" >> "$CALLS"
n=$(wc -l < "$CALLS")
if [ "$n" -le "$LOCKED" ]; then
    echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 1 (apt-get)" >&2
    exit 100
fi
if [[ " $* " == *" install "* ]]; then
    printf '#!/bin/sh\\necho Chromium 1.0\\n' > "$SPL_CHROMIUM"; chmod +x "$SPL_CHROMIUM"
fi
"""


def _run(tmp_path: Path, locked: int, timeout: int) -> tuple[subprocess.CompletedProcess, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "apt-get").write_text(FAKE_APT)
    (bin_dir / "apt-get").chmod(0o755)
    (bin_dir / "sudo").write_text('#!/bin/sh\nexec "$@"\n')  # for a CI user that is not root
    (bin_dir / "sudo").chmod(0o755)
    (bin_dir / "python").write_text("#!/bin/sh\nexit 0\n")  # playwright and the canvas "are installed"
    (bin_dir / "python").chmod(0o755)
    calls = tmp_path / "calls"
    calls.unlink(missing_ok=True)
    calls.touch()
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", CALLS=str(calls),
               LOCKED=str(locked), SPL_CHROMIUM=str(tmp_path / "chromium"),
               SPL_APT_LOCK_TIMEOUT=str(timeout), SPL_APT_RETRY_SECONDS="0.1")
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60)
    return done, calls.read_text().splitlines()


@pytest.mark.skipif(shutil.which("bash") is None, reason="the CI script is a bash script")
def test_install_browser_waits_for_the_apt_lock(tmp_path):
    done, calls = _run(tmp_path, locked=2, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "waiting for another apt run" in done.stderr and "Chromium 1.0" in done.stdout
    assert [c.split()[-1] for c in calls[:3]] == ["-qq"] * 3  # update tried until the lock is free
    assert all("DPkg::Lock::Timeout=30" in c for c in calls)  # dpkg's own wait, for install
    assert "install" in calls[-1]

    (tmp_path / "chromium").unlink()
    done, calls = _run(tmp_path, locked=1000, timeout=1)  # never released: give up at the timeout
    assert done.returncode != 0 and "Could not get lock" in done.stderr
    assert not (tmp_path / "chromium").exists()
