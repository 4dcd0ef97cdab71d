"""Headless Chromium (Debian's package) for the tests that look at a page as a user would.

Every start gets a fresh profile and no network: a proxy that refuses and a resolver that
finds no host, so a page that needs the internet shows what it shows offline.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    """The browser on PATH (Debian's package is ``chromium``), or None."""
    return next((found for name in CANDIDATES if (found := shutil.which(name))), None)


def chromium() -> str:
    """The browser's path; skips the test, saying how to get one, when there is none."""
    found = find_chromium()
    if found is None:
        pytest.skip("no Chromium found (Debian/Ubuntu: apt-get install chromium; .ci/run installs it)")
    return found


def _run(url: str, *args: str, budget_ms: int, timeout: int) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
               f"--user-data-dir={profile}", "--proxy-server=127.0.0.1:9",
               "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
               f"--virtual-time-budget={budget_ms}", *args, url]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def dump_dom(url: str, budget_ms: int = 10_000, timeout: int = 120) -> str:
    """The page's DOM after its scripts ran for ``budget_ms`` of virtual time."""
    return _run(url, "--dump-dom", budget_ms=budget_ms, timeout=timeout).stdout


def screenshot(url: str, out: Path, size: tuple[int, int] = (1400, 1000), budget_ms: int = 10_000,
               timeout: int = 120) -> Path:
    out = Path(out).resolve()
    _run(url, f"--screenshot={out}", f"--window-size={size[0]},{size[1]}", budget_ms=budget_ms, timeout=timeout)
    assert out.is_file() and out.stat().st_size > 0, f"{out}: no screenshot written"
    return out
