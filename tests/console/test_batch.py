"""A whole batch through the console, against a live appliance and a simulated fleet: sign in,
step up, put the fleet on the allowlist from a CSV file, start, watch the devices reach
verified and the one with the wrong password fail with its reason, retry it, download the
report, stop."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.async_api import Browser, FilePayload, Page, expect

from orchestrator.device.faults import FaultProfile
from tests.console.conftest import tablet
from tests.console.live import DEVICES, PORTRAIT, LiveConsole, fleet_bed
from tests.console.steps import (
    BATCH_DONE_MS,
    device_card,
    download,
    sign_in,
    start_batch,
    step_up,
)


async def import_fleet(page: Page, live: LiveConsole) -> None:
    """Put every device of the fleet on the allowlist from a CSV file."""
    rows = "".join(f"{d.mac},bench {i}\n" for i, d in enumerate(live.fleet.devices, 1))
    await page.get_by_role("button", name="Allowlist", exact=True).click()
    csv = FilePayload(
        name="fleet.csv", mimeType="text/csv", buffer=f"mac,description\n{rows}".encode()
    )
    await page.locator("#import-file").set_input_files(files=[csv])
    await expect(page.locator("#allowlist-summary")).to_have_text(
        f"{DEVICES} devices on the allowlist, 0 used, {DEVICES} available."
    )


async def test_a_technician_runs_a_batch_from_sign_in_to_report(
    tmp_path: Path, browser: Browser
) -> None:
    async with (
        fleet_bed(tmp_path / "data") as bed,
        bed.appliance() as live,
        tablet(browser) as page,
    ):
        wrong = next(
            d.mac for d in live.fleet.devices if d.agent.fault is FaultProfile.WRONG_PASSWORD
        )
        await sign_in(page, live)
        await step_up(page, live)
        await import_fleet(page, live)  # gated: the step-up token covers it, no dialog
        await start_batch(page, live)
        await expect(page.locator(".device")).to_have_count(DEVICES)
        # Every card says it is on the allowlist: the grid knows what the import did.
        await expect(page.get_by_text("✓ On the allowlist")).to_have_count(DEVICES)

        await page.get_by_role("button", name="Provision all").click()
        await expect(page.locator("#count-verified")).to_have_text(
            str(DEVICES - 1), timeout=BATCH_DONE_MS
        )
        await expect(page.locator("#count-failed")).to_have_text("1", timeout=BATCH_DONE_MS)
        await expect(page.locator("#session-progress-text")).to_contain_text("100% done")
        card = device_card(page, wrong)
        await expect(card.locator(".badge")).to_have_text("Failed")
        await expect(card.locator(".reason")).to_contain_text("Wrong Wi-Fi password")
        await expect(page.locator('.device[data-state="verified"]')).to_have_count(DEVICES - 1)

        # Retry: the device is given the credentials again and fails again, for the same reason.
        await card.get_by_role("button", name=f"Retry {wrong}").click()
        await expect(card.get_by_text("Retried 1 time")).to_be_visible(timeout=BATCH_DONE_MS)
        await expect(card).to_have_attribute("data-state", "failed", timeout=BATCH_DONE_MS)
        await expect(card.locator(".reason")).to_contain_text("Wrong Wi-Fi password")

        session_id = (await page.locator("#session-id").inner_text()).removeprefix("Session ")
        name, report = await download(page, "Download report (CSV)")
        assert name == f"report-{session_id}.csv"
        assert wrong in report
        assert "auth_error" in report  # the failure reason, for the one that failed
        assert all(d.mac in report for d in live.fleet.devices)
        assert live.fleet.spec.target_password not in report
        json_name, json_report = await download(page, "Download report (JSON)")
        assert json_name.endswith(".json")
        assert live.fleet.spec.target_password not in json_report

        # Portrait: the same screen, nothing wider than the tablet.
        await page.set_viewport_size(PORTRAIT)
        assert (
            await page.evaluate("() => document.documentElement.scrollWidth") <= PORTRAIT["width"]
        )

        await page.get_by_role("button", name="Stop batch").click()
        await page.locator("#confirm-dialog").get_by_role("button", name="Stop batch").click()
        await expect(page.locator("#session-state")).to_have_text("Closed")
        await page.get_by_role("button", name="New batch").click()
        await expect(page.get_by_label("Target Wi-Fi name (SSID)")).to_be_focused()

        await page.get_by_role("button", name="Reports", exact=True).click()
        listed = page.locator(f'#history-rows tr[data-session="{session_id}"]')
        await expect(listed).to_contain_text(live.fleet.spec.target_ssid)
        await expect(listed.get_by_role("button", name="CSV report", exact=False)).to_be_visible()
        devices = await _devices(live, session_id)
    assert devices[wrong]["retry_count"] == 1
    assert devices[wrong]["state"] == "failed"


async def _devices(live: LiveConsole, session_id: str) -> dict[str, dict[str, object]]:
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        response = await client.get(
            f"{live.api}/batch/{session_id}/devices", headers={"X-API-Key": live.api_key}
        )
    return {d["mac"]: d for d in response.json()["data"]["devices"]}
