"""Browser tests drive Debian's chromium through Playwright; without it they skip, saying how
to install it (CI installs it, and turns skips into failures)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, ConsoleMessage, Error, Page, ViewportSize, expect

from tests.console.live import CHROMIUM, LANDSCAPE, chromium

EXPECT_TIMEOUT_MS = 10_000
"""Playwright's waits (they poll; nothing here sleeps): room for a slow CI machine."""


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(
            f"Debian's chromium is not installed ({CHROMIUM}); install it with "
            "`scripts/system-deps.sh` as root (apt-get install chromium). Playwright never "
            "downloads a browser here."
        )
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    async with chromium() as launched:
        yield launched


class PageErrors:
    """Script errors of a page (uncaught exceptions and console.error): a test fails on any."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def console(self, message: ConsoleMessage) -> None:
        # A failed request is logged by the browser itself; the console shows it as an alert.
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.seen.append(f"console.error: {message.text}")

    def exception(self, error: Error) -> None:
        self.seen.append(f"uncaught: {error}")


@contextlib.asynccontextmanager
async def tablet(browser: Browser, viewport: ViewportSize = LANDSCAPE) -> AsyncIterator[Page]:
    """A fresh tab on a 10-inch tablet; fails the test if the console's scripts went wrong."""
    context = await browser.new_context(viewport=viewport, accept_downloads=True)
    page = await context.new_page()
    errors = PageErrors()
    page.on("console", errors.console)
    page.on("pageerror", errors.exception)
    try:
        yield page
    finally:
        await context.close()
    assert not errors.seen, errors.seen
