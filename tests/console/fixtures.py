"""Fixtures of the browser tests: one Chromium per session and the screenshots folder.

A plugin of the root conftest (``pytest_plugins``), so the console and the Keystone browser
tests share the one Chromium: two Playwright sessions cannot run in one thread."""
from __future__ import annotations

import pytest

from tests.console.browser import Shots, launch
from tests.helpers import skip_or_fail


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium (Debian's), through Playwright."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("playwright is not installed (the test extra: pip install -e '.[test]')")
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory):
    """Where the tests save their screenshots (printed at the end of the run)."""
    folder = tmp_path_factory.mktemp("screenshots")
    return Shots(folder)
