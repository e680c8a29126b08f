"""Allowlist management in the console (add, edit, export, remove, by keyboard) and pair by
code: typed into the console, and through the claim page a device's QR code opens."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, Locator, Page, expect

from orchestrator.domain.mac import parse_mac
from orchestrator.sim.fleet import FleetSpec, SimulatedDevice
from tests.console.conftest import tablet
from tests.console.live import LiveConsole, fleet_bed
from tests.console.steps import download, enter_code, sign_in, unnamed_controls

TYPED = "02-aa-bb-cc-dd-01"
MAC = "02:AA:BB:CC:DD:01"


async def pairing_code(live: LiveConsole, device: SimulatedDevice) -> tuple[str, str]:
    """Press the device's pairing button and let the appliance show it a code, as discovery
    does when the device advertises `pairing`: the code and the claim link of its QR code."""
    device.agent.request_pairing()
    await live.appliance.services.pairing.offer(parse_mac(device.mac), device.ip)
    display = device.agent.pairing()
    assert display.code is not None
    assert display.claim_url is not None
    return display.code, display.claim_url


def row(page: Page, mac: str) -> Locator:
    """The allowlist table's row of `mac`."""
    return page.locator(f'#allowlist-rows tr[data-mac="{mac}"]')


async def test_allowlist_add_edit_export_remove(tmp_path: Path, browser: Browser) -> None:
    spec = FleetSpec(devices=1)
    async with (
        fleet_bed(tmp_path / "data", spec) as bed,
        bed.appliance() as live,
        tablet(browser) as page,
    ):
        # Sign in by keyboard: the key field has the focus, Enter submits.
        await page.goto(live.url + "/")
        await expect(page.get_by_label("API key")).to_be_focused()
        await page.keyboard.type(live.api_key)
        await page.keyboard.press("Enter")
        await expect(page.locator("#who-name")).to_have_text("technician")
        assert await unnamed_controls(page) == []
        await page.get_by_role("button", name="Allowlist", exact=True).click()

        # By keyboard: Enter opens the form and submits it; the gate asks for a code first.
        await page.locator("#add-panel summary").press("Enter")
        await page.get_by_label("MAC address", exact=True).fill(TYPED)
        await page.locator("#add-description").fill("Shelf 2")
        await page.get_by_label("MAC address", exact=True).press("Enter")
        await enter_code(page, live)
        await expect(row(page, MAC)).to_contain_text("Shelf 2")
        await expect(row(page, MAC)).to_contain_text("Available")

        await row(page, MAC).get_by_role("button", name=f"Edit {MAC}").click()
        dialog = page.locator("#edit-dialog")
        await dialog.get_by_label("Description").fill("Shelf 3, left")
        await dialog.get_by_label("Container").fill("box-7")
        await dialog.get_by_role("button", name="Save").click()
        await expect(row(page, MAC)).to_contain_text("Shelf 3, left")
        await expect(row(page, MAC)).to_contain_text("box-7")

        _, exported = await download(page, "Export CSV")
        assert exported.splitlines() == [
            "mac,description,container_id",
            f'{MAC},"Shelf 3, left",box-7',
        ]

        await row(page, MAC).get_by_role("button", name=f"Remove {MAC}").click()
        await page.locator("#confirm-dialog").get_by_role("button", name="Remove").click()
        await expect(row(page, MAC)).to_have_count(0)
        await expect(page.locator("#allowlist-summary")).to_have_text(
            "0 devices on the allowlist, 0 used, 0 available."
        )


async def test_pair_by_code_in_the_console_and_from_a_devices_qr_link(
    tmp_path: Path, browser: Browser
) -> None:
    spec = FleetSpec(devices=2)
    async with (
        fleet_bed(tmp_path / "data", spec) as bed,
        bed.appliance() as live,
        tablet(browser) as page,
    ):
        typed, scanned = live.fleet.devices
        await sign_in(page, live)
        await page.get_by_role("button", name="Allowlist", exact=True).click()

        # A code no device shows is refused, in words.
        await page.get_by_label("Pairing code").fill("XXXXXX")
        await page.get_by_role("button", name="Add the device").click()
        await enter_code(page, live)
        await expect(page.locator("#pair-error")).to_contain_text("No device")

        code, _ = await pairing_code(live, typed)
        await page.get_by_label("Pairing code").fill(f" {code.lower()} ")
        await page.get_by_role("button", name="Add the device").click()
        await expect(row(page, typed.mac)).to_be_visible()
        await expect(page.locator("#pair-error")).to_be_empty()

        # The QR code opens the claim page; it knows this tab's key, and asks for a code
        # (the claim page starts without the console's step-up token).
        _, link = await pairing_code(live, scanned)
        assert link.startswith(live.url + "/console/pair?code=")
        await page.goto(link)
        await expect(page.get_by_label("Pairing code")).to_have_value(link.rsplit("=", 1)[1])
        assert "code=" not in page.url  # a secret: not left in the address bar or history
        assert await unnamed_controls(page) == []
        await page.get_by_label("Description (optional)").fill("came by QR")
        await page.get_by_role("button", name="Add the device to the allowlist").click()
        await enter_code(page, live)
        await expect(page.get_by_role("status")).to_have_text(
            f"Device {scanned.mac} is on the allowlist. It can be provisioned now."
        )
        await page.get_by_role("link", name="Open the console").click()
        await page.get_by_role("button", name="Allowlist", exact=True).click()
        await expect(row(page, scanned.mac)).to_contain_text("came by QR")
