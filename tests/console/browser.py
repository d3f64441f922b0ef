"""Headless Chromium from Debian's packages, driven by Playwright's Python package.

Playwright's own browser download is not used (nor reachable here): it is pointed at
``/usr/bin/chromium`` (``apt-get install chromium``; ``.ci/run`` installs it), with the flags
that keep Chromium off the network: no background networking, component updates or sync.
Each test context is a fresh profile: its own session storage, no cookies.
"""
from __future__ import annotations

import os
import shutil

from tests.helpers import skip_or_fail

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def chromium_path() -> str:
    """The system Chromium, or a skip (a failure under CI) naming the package."""
    path = os.environ.get("IMAGEDATA_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        skip_or_fail("chromium is not installed (Debian package chromium; .ci/run installs it)")
    return path


def launch(playwright):
    """A headless Chromium (fresh temporary profile) from the system package."""
    return playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)


class Shots:
    """Saves numbered full-page screenshots of the pages the tests visit into one folder."""

    def __init__(self, folder):
        self.folder = str(folder)
        os.makedirs(self.folder, exist_ok=True)
        self.count = 0

    def take(self, page, name: str) -> str:
        """Screenshot ``page`` as ``NN-name.png``; returns the file's path."""
        self.count += 1
        path = os.path.join(self.folder, f"{self.count:02d}-{name}.png")
        page.screenshot(path=path, full_page=True)
        return path


def js_heap_bytes(cdp) -> int:
    """The page's JS heap in use now (Chrome DevTools Protocol: Runtime.getHeapUsage)."""
    return int(cdp.send("Runtime.getHeapUsage")["usedSize"])
