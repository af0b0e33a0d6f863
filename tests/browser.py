"""Debian's Chromium under Playwright, for the browser tests (one place).

`playwright install` is never run: the tests launch /usr/bin/chromium (apt-get install chromium)
and are skipped, saying why, where it or the playwright package is missing.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - exercised only where playwright is missing
    Browser = Page = expect = sync_playwright = None  # type: ignore[assignment,misc]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

BROWSER_SKIPS = [
    pytest.mark.skipif(sync_playwright is None, reason="playwright is not installed (pip install playwright)"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (apt-get install chromium)"),
]


def launch_chromium(playwright: Any) -> Any:
    """A headless Chromium from a `sync_playwright()` context, with the flags every test uses."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
