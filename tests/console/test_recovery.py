"""After a restart, the console offers to resume or discard the batch the earlier run left
open, and resuming it carries the batch on to the end."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, expect

from tests.console.conftest import tablet
from tests.console.live import DEVICES, fleet_bed
from tests.console.steps import BATCH_DONE_MS, sign_in, start_via_api


async def test_after_a_restart_the_banner_offers_resume_and_resuming_finishes_the_batch(
    tmp_path: Path, browser: Browser
) -> None:
    async with fleet_bed(tmp_path / "data") as bed, tablet(browser) as page:
        async with bed.appliance() as live:
            await sign_in(page, live)
            session_id = await start_via_api(live)
            await expect(page.locator(".device")).to_have_count(DEVICES)
            await expect(page.locator(".banner")).to_have_count(0)
        # The appliance stopped without stopping the session; a new run on the same data.
        async with bed.appliance() as live:
            await page.reload()  # the tab keeps its key; the new run issues a new cookie
            banner = page.locator(f'.banner[data-session="{session_id}"]')
            await expect(banner).to_contain_text("A batch was interrupted")
            await expect(banner).to_contain_text(f"{DEVICES} devices, 0 verified, 0 failed")
            await expect(banner.get_by_role("button", name="Discard batch")).to_be_visible()
            await expect(page.locator("#session-state")).to_have_text("Interrupted")
            await expect(page.get_by_role("button", name="Provision all")).to_be_hidden()

            await banner.get_by_role("button", name="Resume batch").click()
            await expect(page.locator(".banner")).to_have_count(0)
            await expect(page.locator("#session-id")).to_have_text(f"Session {session_id}")
            await page.get_by_label("Include devices not on the allowlist").check()
            await page.get_by_role("button", name="Provision all").click()
            await expect(page.locator("#count-verified")).to_have_text(
                str(DEVICES - 1), timeout=BATCH_DONE_MS
            )
            await expect(page.locator("#count-failed")).to_have_text("1", timeout=BATCH_DONE_MS)
