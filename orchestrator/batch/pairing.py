"""Pair-by-code: a device not on the allowlist shows a code; a technician types it in.

Discovery `offer`s a device that advertises `pairing`; the service opens a pairing session (a
code never issued before, valid ten minutes) and shows the code on the device's display. A
technician's `claim` of a live code consumes it and puts that device on the allowlist.

Wrong codes are rate limited per API key and over all keys together. An unknown, expired and
already claimed code get the same answer: telling them apart would only confirm to a guesser
that a guess was once a real code, and the technician's remedy is the same (read the display
again, or press the pairing button for a new code).

A code is a short-lived secret: logs and audit entries carry `code_hint(code)` at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Annotated

import msgspec
import segno

from orchestrator.batch.audit import Auditor
from orchestrator.context import mac_var
from orchestrator.domain.allowlist import AllowlistEntry, revise
from orchestrator.domain.audit import SYSTEM_ACTOR, Outcome
from orchestrator.domain.errors import ErrorCode, OrchestratorError
from orchestrator.domain.mac import Mac, is_mac, parse_mac
from orchestrator.domain.pairing import (
    MAX_CONSOLE_BASE_URL_LENGTH,
    PAIRING_TTL,
    GuessLimiter,
    PairingSession,
    claim_url,
    code_hint,
    make_pairing_code,
    new_pairing_session,
    parse_pairing_code,
)
from orchestrator.ports.devices import DeviceClient, DeviceUnreachableError
from orchestrator.ports.storage import StorageError, Store
from orchestrator.protocol.messages import MAX_REQUEST_BYTES, DeviceInfo, PairingDisplay

log = logging.getLogger(__name__)

AUDIT_OPEN = "pairing.open"
AUDIT_CLAIM = "pairing.claim"
AUDIT_CLAIM_FAILED = "pairing.claim_failed"

CODE_ATTEMPTS = 32
"""Fresh codes tried before giving up; with 25**6 codes, a collision is rare and 32 in a row
means the randomness is broken."""

ConsoleBaseUrl = Annotated[
    str,
    msgspec.Meta(
        max_length=MAX_CONSOLE_BASE_URL_LENGTH,
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        examples=["http://orchestrator.local:8080"],
    ),
]
_ENCODER = msgspec.json.Encoder()


class PairingSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Pair-by-code: the claim link shown on devices, and the limits on wrong codes."""

    # The limits' defaults: one API key gets 5 wrong codes per 5 minutes, all keys together
    # 20 per 10 minutes, so one key alone (at most 10 per 10 minutes) cannot lock the others
    # out, and a guesser facing 10 live codes hits one with a chance of about 1 in 1.2
    # million per 10 minutes (10 * 20 / 25**6).

    console_base_url: ConsoleBaseUrl | None = None
    """Where technicians reach the console (`http(s)://host[:port][/prefix]`, at most 100
    characters). Set, devices with a screen show a QR code of
    `<console_base_url>/console/pair?code=<CODE>`; unset, they show the code only."""
    max_failures_per_key: Annotated[int, msgspec.Meta(ge=1, le=100)] = 5
    failure_window_s: Annotated[int, msgspec.Meta(ge=1, le=86_400)] = 300
    """An API key with `max_failures_per_key` wrong codes within this many seconds is refused
    (RATE_LIMITED) until the oldest of them is this old."""
    max_failures_total: Annotated[int, msgspec.Meta(ge=1, le=1_000)] = 20
    total_failure_window_s: Annotated[int, msgspec.Meta(ge=1, le=86_400)] = 600
    """The same over all API keys together: what bounds guessing with many keys."""
    purge_interval_s: Annotated[float, msgspec.Meta(gt=0, le=3_600)] = 60.0
    """How often expired pairing sessions are deleted."""
    device_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=30)] = 5.0
    """How long showing or clearing a code on a device may take."""


class NoDeviceClient:
    """A DeviceClient for an appliance with no device transport installed: every device is
    unreachable (offers and display clears are then logged, not carried out)."""

    async def info(self, ip: str) -> DeviceInfo:
        """Always DeviceUnreachableError."""
        raise DeviceUnreachableError(f"no device transport is configured to reach {ip}")

    async def show_pairing(self, ip: str, display: PairingDisplay) -> None:
        """Always DeviceUnreachableError."""
        raise DeviceUnreachableError(f"no device transport is configured to reach {ip}")


def qr_svg(url: str) -> str:
    """An SVG QR code of `url`: scalable (a viewBox, no fixed size), one path, no XML
    declaration or classes, so it costs as few bytes of the device request as possible."""
    out = io.BytesIO()
    segno.make(url, error="l", micro=False).save(
        out,
        kind="svg",
        xmldecl=False,
        svgns=True,
        svgclass=None,
        lineclass=None,
        omitsize=True,
        nl=False,
        border=2,
    )
    return out.getvalue().decode("utf-8")


def pairing_display(code: str, console_base_url: str | None) -> PairingDisplay:
    """What a device shows for `code`: the code, and with a console URL the claim link and
    its QR code; the QR code is left out if the request would outgrow MAX_REQUEST_BYTES."""
    if console_base_url is None:
        return PairingDisplay(code=code)
    url = claim_url(console_base_url, code)
    display = PairingDisplay(code=code, claim_url=url, qr_svg=qr_svg(url))
    size = len(_ENCODER.encode(display))
    if size > MAX_REQUEST_BYTES:
        log.warning(
            "QR code of the claim link left out: the request would be %d bytes (limit %d); "
            "shorten pairing.console_base_url",
            size,
            MAX_REQUEST_BYTES,
        )
        return msgspec.structs.replace(display, qr_svg=None)
    return display


class PairingService:
    """Opens pairing sessions for devices that ask, and turns claimed codes into allowlist
    entries."""

    def __init__(
        self,
        *,
        store: Store,
        client: DeviceClient,
        auditor: Auditor,
        clock: Callable[[], datetime],
        settings: PairingSettings,
        choose: Callable[[str], str] = secrets.choice,
    ) -> None:
        """`choose` draws each code character (injected so tests can force collisions)."""
        self._store = store
        self._client = client
        self._auditor = auditor
        self._clock = clock
        self._settings = settings
        self._choose = choose
        self._limiter = GuessLimiter(
            per_claimant=settings.max_failures_per_key,
            per_claimant_window=timedelta(seconds=settings.failure_window_s),
            overall=settings.max_failures_total,
            overall_window=timedelta(seconds=settings.total_failure_window_s),
        )
        # Serialises find-or-issue, so two offers for one device open one session.
        self._opening = asyncio.Lock()

    async def offer(self, mac: Mac, ip: str) -> None:
        """A device not on the allowlist advertises `pairing`: open a session (or reuse the
        live one of this MAC) and show its code on the device. Never raises for an
        unreachable device (it is logged; discovery offers again when the device shows up
        again). A device already on the allowlist has its display cleared instead."""
        token = mac_var.set(mac)
        try:
            if await self._store.allowlist.get(mac) is not None:
                log.info("already on the allowlist; clearing its pairing display")
                await self._show(ip, PairingDisplay())
                return
            session = await self._live_session(mac, ip)
            display = await asyncio.to_thread(
                pairing_display, session.pairing_code, self._settings.console_base_url
            )
            await self._show(ip, display)
        finally:
            mac_var.reset(token)

    async def claim(
        self, code: str, *, actor: str, description: str | None, container_id: str | None
    ) -> AllowlistEntry:
        """Consume a live code and put its device on the allowlist (an existing entry gets the
        description and container given). Repeating a claim (same API key, code not yet
        expired) answers the same entry again, so a retried request is harmless.

        Raises VALIDATION_FAILED (not a code), RATE_LIMITED (too many wrong codes),
        DEVICE_NOT_FOUND (unknown, expired or claimed by another key).
        """
        canonical = parse_pairing_code(code)
        hint = code_hint(canonical)
        now = self._clock()
        # Refused before the code is looked at: a limited guesser learns nothing, even
        # from a right guess.
        retry_after = self._limiter.retry_after(actor, now)
        if retry_after is not None:
            await self._auditor.record(
                AUDIT_CLAIM_FAILED, Outcome.DENIED, actor=actor, detail=f"{hint}: rate limited"
            )
            raise OrchestratorError(
                ErrorCode.RATE_LIMITED,
                f"too many wrong pairing codes; try again in {retry_after} s",
                retry_after_s=retry_after,
            )
        # Counted as wrong until the store says otherwise: concurrent tries cannot all pass
        # the check above while the first of them awaits the store.
        self._limiter.count_failure(actor, now)
        session = await self._store.provisioning.claim_session(canonical, actor, now)
        if session is None:
            await self._auditor.record(
                AUDIT_CLAIM_FAILED,
                Outcome.DENIED,
                actor=actor,
                detail=f"{hint}: unknown, expired or already claimed",
            )
            raise OrchestratorError(
                ErrorCode.DEVICE_NOT_FOUND,
                "no device is showing this pairing code: check it against the device's "
                "display; a code works once and for "
                f"{int(PAIRING_TTL.total_seconds()) // 60} minutes (press the device's "
                "pairing button for a new one)",
            )
        self._limiter.forgive(actor, now)
        if not is_mac(session.device_id):
            # Pair-by-code opens sessions for MACs only; another writer stored this one.
            raise OrchestratorError(
                ErrorCode.INTERNAL_ERROR,
                "this pairing code belongs to a device record, not to a device's MAC address",
            )
        mac = parse_mac(session.device_id)
        token = mac_var.set(mac)
        try:
            entry, change = await self._allow(mac, description, container_id)
            await self._auditor.record(
                AUDIT_CLAIM, actor=actor, mac=mac, detail=f"{hint}: {change}"
            )
            log.info("pairing code %s claimed: %s", hint, change)
            await self._show(session.device_ip, PairingDisplay())
        finally:
            mac_var.reset(token)
        return entry

    async def purge_expired(self) -> int:
        """Delete the pairing sessions expired by now; return how many went."""
        purged = await self._store.provisioning.delete_expired_sessions(self._clock())
        if purged:
            log.info("purged %d expired pairing sessions", purged)
        return purged

    async def run_purge(self, interval_s: float) -> None:
        """Purge now and then every `interval_s` seconds, until cancelled. A failing store is
        logged and tried again next time."""
        while True:
            try:
                await self.purge_expired()
            except StorageError as exc:
                log.warning("purging expired pairing sessions failed: %s", exc)
            await asyncio.sleep(interval_s)

    @contextlib.asynccontextmanager
    async def purging(self) -> AsyncIterator[None]:
        """Run the purge loop (every `purge_interval_s`) for the block's duration."""
        async with asyncio.TaskGroup() as tasks:
            task = tasks.create_task(self.run_purge(self._settings.purge_interval_s))
            try:
                yield
            finally:
                task.cancel()

    async def _live_session(self, mac: Mac, ip: str) -> PairingSession:
        """The device's live session (its address brought up to date), or a new one."""
        async with self._opening:
            now = self._clock()
            provisioning = self._store.provisioning
            session = await provisioning.find_live_session_for_device(mac, now)
            if session is not None:
                if session.device_ip != ip:
                    session = msgspec.structs.replace(session, device_ip=ip)
                    await provisioning.save_session(session)
                return session
            for _ in range(CODE_ATTEMPTS):
                code = make_pairing_code(self._choose)
                session = new_pairing_session(code=code, device_id=mac, device_ip=ip, now=now)
                if await provisioning.issue_session(session):
                    await self._auditor.record(
                        AUDIT_OPEN,
                        actor=SYSTEM_ACTOR,
                        mac=mac,
                        detail=f"{code_hint(code)} until {session.expires_at.isoformat()}",
                    )
                    log.info("pairing session opened: code %s", code_hint(code))
                    return session
            raise OrchestratorError(
                ErrorCode.INTERNAL_ERROR,
                f"no unused pairing code after {CODE_ATTEMPTS} tries; is the randomness broken?",
            )

    async def _allow(
        self, mac: Mac, description: str | None, container_id: str | None
    ) -> tuple[AllowlistEntry, str]:
        """Put `mac` on the allowlist (or revise its entry); the entry and what changed."""
        entries = self._store.allowlist
        existing = await entries.get(mac)
        if existing is None:
            entry = AllowlistEntry(
                mac=mac,
                added_at=self._clock(),
                description=description,
                container_id=container_id,
            )
            await entries.put(entry)
            return entry, "added to the allowlist"
        entry = revise(existing, description=description, container_id=container_id)
        if entry != existing:
            await entries.put(entry)
        return entry, "already on the allowlist"

    async def _show(self, ip: str, display: PairingDisplay) -> None:
        """Best effort: a device that does not answer is logged, never an error."""
        what = "show the pairing code" if display.code else "clear the pairing display"
        try:
            async with asyncio.timeout(self._settings.device_timeout_s):
                await self._client.show_pairing(ip, display)
        except (DeviceUnreachableError, TimeoutError) as exc:
            log.warning("could not %s on %s: %s", what, ip, str(exc) or "timed out")
