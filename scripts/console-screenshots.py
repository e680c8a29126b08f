#!/usr/bin/env python3
"""Screenshots of the console's main screens at tablet size, for docs/console/.

    .venv/bin/python scripts/console-screenshots.py [--out docs/console]

Runs what the browser tests run (tests/console/live.py: a loopback fleet of six devices, one
with a wrong-password fault, the appliance served on loopback with TOTP step-up on, Debian's
chromium) and walks through a batch: sign-in, the start form, the step-up code, the device
grid with a failure, the allowlist, the pairing page, and the resume banner after a restart.
Each screen is taken at 1280x800 (landscape) and, where the layout changes, 800x1280
(portrait).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
from pathlib import Path

# The fixtures live with the tests; the repository root makes them importable from here.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.async_api import FilePayload, Page, ViewportSize, expect

from orchestrator.device.faults import FaultProfile
from orchestrator.domain.mac import parse_mac
from tests.console.live import (
    CHROMIUM,
    DEVICES,
    LANDSCAPE,
    PORTRAIT,
    LiveConsole,
    chromium,
    fleet_bed,
)
from tests.console.steps import BATCH_DONE_MS, sign_in

log = logging.getLogger("console-screenshots")


async def shoot(
    page: Page, out: Path, name: str, *, landscape: bool = True, portrait: bool = True
) -> None:
    """`<name>-landscape.png` and `<name>-portrait.png` (unless told otherwise)."""
    sizes: list[tuple[str, ViewportSize]] = []
    if landscape:
        sizes.append(("landscape", LANDSCAPE))
    if portrait:
        sizes.append(("portrait", PORTRAIT))
    # Messages fade by themselves; a picture shows the screen as it settles.
    await page.evaluate("document.getElementById('alerts')?.replaceChildren()")
    for orientation, size in sizes:
        await page.set_viewport_size(size)
        await page.evaluate("window.scrollTo(0, 0)")
        path = out / f"{name}-{orientation}.png"
        await page.screenshot(path=str(path), animations="disabled", caret="hide")
        log.info("%s (%d KB)", path, path.stat().st_size // 1024)
    await page.set_viewport_size(LANDSCAPE)


async def first_run(page: Page, live: LiveConsole, out: Path) -> None:
    """Sign in, start a batch (all but one device allowlisted), run it, pair the odd one."""
    spec = live.fleet.spec
    devices = live.fleet.devices
    wrong = next(d for d in devices if d.agent.fault is FaultProfile.WRONG_PASSWORD)
    unlisted = next(d for d in devices if d is not wrong)
    await page.goto(live.url + "/")
    await expect(page.get_by_label("API key")).to_be_visible()
    await shoot(page, out, "sign-in")
    await sign_in(page, live)

    await page.get_by_role("button", name="Allowlist", exact=True).click()
    rows = "".join(
        f"{d.mac},Line A camera {i},crate-{i // 3 + 1}\n"
        for i, d in enumerate(devices, 1)
        if d is not unlisted
    )
    await page.locator("#import-file").set_input_files(
        files=[FilePayload(name="line-a.csv", mimeType="text/csv", buffer=rows.encode())]
    )
    dialog = page.locator("#step-up-dialog")  # the first gated change asks for a code
    await dialog.get_by_label("6-digit code").fill(live.codes.fresh())
    await shoot(page, out, "step-up", portrait=False)
    await dialog.get_by_role("button", name="Confirm").click()
    await expect(page.locator("#allowlist-summary")).to_contain_text(f"{DEVICES - 1} devices")

    await page.get_by_role("button", name="Batch", exact=True).click()
    await page.get_by_label("Target Wi-Fi name (SSID)").fill(spec.target_ssid)
    await page.get_by_label("Wi-Fi password").fill(spec.target_password)
    await page.locator("details.more summary").click()
    await shoot(page, out, "start", portrait=False)
    await page.get_by_role("button", name="Start batch").click()
    await expect(page.locator(".device")).to_have_count(DEVICES)
    await page.get_by_role("button", name="Provision all").click()
    await expect(page.locator("#count-failed")).to_have_text("1", timeout=BATCH_DONE_MS)
    await expect(page.locator("#count-verified")).to_have_text(
        str(DEVICES - 2), timeout=BATCH_DONE_MS
    )
    await shoot(page, out, "batch")

    await page.get_by_role("button", name="Allowlist", exact=True).click()
    await expect(page.locator("#allowlist-rows tr")).to_have_count(DEVICES - 1)
    await shoot(page, out, "allowlist")

    unlisted.agent.request_pairing()
    await live.appliance.services.pairing.offer(parse_mac(unlisted.mac), unlisted.ip)
    link = unlisted.agent.pairing().claim_url
    if link is None:
        raise SystemExit("the device shows no claim link: is pairing.console_base_url set?")
    await page.goto(link)
    await page.get_by_label("Description (optional)").fill("Line A camera, spare")
    await page.set_viewport_size(PORTRAIT)  # the claim page is one narrow column anyway
    await shoot(page, out, "pair", landscape=False)


async def second_run(page: Page, live: LiveConsole, out: Path) -> None:
    """After a restart: the banner offering to resume the batch the first run left open."""
    await page.goto(live.url + "/")
    await expect(page.locator(".banner")).to_be_visible()
    await shoot(page, out, "resume")


async def main(out: Path) -> None:
    """Run both appliance runs against one fleet and data directory."""
    with tempfile.TemporaryDirectory(prefix="console-shots-") as scratch:
        async with fleet_bed(Path(scratch) / "data") as bed, chromium() as browser:
            context = await browser.new_context(viewport=LANDSCAPE)
            page = await context.new_page()
            async with bed.appliance() as live:
                await first_run(page, live, out)
            async with bed.appliance() as live:
                await second_run(page, live, out)
            await context.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/console"), help="directory")
    arguments = parser.parse_args()
    # The appliance's own log lines are not this script's business: only what it wrote.
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing: run scripts/system-deps.sh as root")
    arguments.out.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(arguments.out))
