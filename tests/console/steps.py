"""What a technician does in the console, step by step (shared by the browser tests and
scripts/console-screenshots.py). Every wait is one of Playwright's auto-waiting expectations."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
from playwright.async_api import Locator, Page, expect

from tests.console.live import LiveConsole

BATCH_DONE_MS = 30_000
"""Discovery, delivery, the devices' joins and their proof on the target network."""


async def sign_in(page: Page, live: LiveConsole) -> None:
    """Open the console and sign in with the API key."""
    await page.goto(live.url + "/")
    await page.get_by_label("API key").fill(live.api_key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#who-name")).to_contain_text("technician")


UNNAMED_CONTROLS = """() => [...document.querySelectorAll("input, select, textarea, button")]
    .filter((c) => c.type !== "hidden")
    .filter((c) => !(c.labels?.length || c.getAttribute("aria-label") ||
                     c.getAttribute("aria-labelledby") || c.textContent.trim()))
    .map((c) => c.outerHTML)"""
"""Form controls and buttons a screen reader could not name (no label, no text)."""


async def unnamed_controls(page: Page) -> list[str]:
    """Every control of the page without an accessible name."""
    found: list[str] = await page.evaluate(UNNAMED_CONTROLS)
    return found


async def enter_code(page: Page, live: LiveConsole) -> None:
    """Type a fresh TOTP code into the open step-up dialog and confirm it."""
    dialog = page.locator("#step-up-dialog")
    await expect(dialog).to_be_visible()
    await dialog.get_by_label("6-digit code").fill(live.codes.fresh())
    await dialog.get_by_role("button", name="Confirm").click()
    await expect(dialog).to_be_hidden()


async def step_up(page: Page, live: LiveConsole) -> None:
    """Verify with a code from the header, before any gated action asks."""
    await page.get_by_role("button", name="Verify with code").click()
    await enter_code(page, live)
    await expect(page.get_by_role("button", name=re.compile("^Verified until"))).to_be_visible()


async def start_batch(page: Page, live: LiveConsole) -> None:
    """Fill in the fleet's network and start a batch (already stepped up)."""
    spec = live.fleet.spec
    await page.get_by_role("button", name="Batch", exact=True).click()
    await page.get_by_label("Target Wi-Fi name (SSID)").fill(spec.target_ssid)
    await page.get_by_label("Wi-Fi password").fill(spec.target_password)
    await page.get_by_role("button", name="Start batch").click()
    await expect(page.locator("#session-title")).to_have_text(f"Batch for “{spec.target_ssid}”")


def device_card(page: Page, mac: str) -> Locator:
    """The grid's card of one device."""
    return page.locator(f'.device[data-mac="{mac}"]')


async def start_via_api(live: LiveConsole) -> str:
    """Start a batch the way another client would (X-TOTP-Code); its session id."""
    spec = live.fleet.spec
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        response = await client.post(
            f"{live.api}/batch/start",
            json={"target_ssid": spec.target_ssid, "target_password": spec.target_password},
            headers={"X-API-Key": live.api_key, "X-TOTP-Code": live.codes.fresh()},
        )
    assert response.status_code == 201, response.text
    session_id: str = response.json()["data"]["session"]["id"]
    return session_id


async def download(page: Page, button: str) -> tuple[str, str]:
    """Click a download button; the file's suggested name and its text."""
    async with page.expect_download() as started:
        await page.get_by_role("button", name=button).click()
    file = await started.value
    path = Path(await file.path())
    return file.suggested_filename, await asyncio.to_thread(path.read_text, encoding="utf-8")
