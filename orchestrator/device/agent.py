"""The reference device agent: the device side of the protocol, as one asyncio object.

The HTTP API (`orchestrator.device.http`) calls `info`, `deliver`, `identify` and the pairing
methods, and the pairing button `request_pairing`; `run()`, owned by the caller's TaskGroup,
does the work that follows a delivery: leave the onboarding network, join the target network,
report online over MQTT, or come back failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable
from pathlib import Path

import msgspec

from orchestrator.context import mac_var
from orchestrator.device.cloud import request_provisioning, start_up
from orchestrator.device.errors import (
    AgentError,
    BrokerUnreachableError,
    JoinError,
    OnlineError,
    RequestError,
)
from orchestrator.device.faults import JOIN_FAULTS, LATE_REBOOTS, FaultProfile
from orchestrator.device.lifecycle import ACCEPTS_CREDENTIALS, Phase, advance
from orchestrator.device.mqtt import StatusLink, status_link
from orchestrator.device.network import Attachment, NetworkSwitch
from orchestrator.device.settings import AgentTiming, DeviceIdentity, Sleep
from orchestrator.protocol import PROTOCOL_VERSION
from orchestrator.protocol.messages import (
    Credentials,
    DeliveryReceipt,
    DeviceErrorCode,
    DeviceInfo,
    LastFailure,
    PairingDisplay,
    SecurityScheme,
)
from orchestrator.protocol.status import CloudReport, Online

log = logging.getLogger(__name__)


class DeviceAgent:
    """One simulated (or reference) device."""

    def __init__(
        self,
        identity: DeviceIdentity,
        switch: NetworkSwitch,
        *,
        fault: FaultProfile = FaultProfile.NONE,
        timing: AgentTiming | None = None,
        sleep: Sleep = asyncio.sleep,
        on_change: Callable[[Phase], None] | None = None,
        cloud_dir: Path | None = None,
    ) -> None:
        """`cloud_dir` is where a device that registers with a cloud keeps its files
        (provision.json, thermal_config.json, ...); without one it registers nowhere."""
        self.identity = identity
        self.fault = fault
        self.timing = timing or AgentTiming()
        self._switch = switch
        self._sleep = sleep
        self._on_change = on_change
        self._cloud_dir = cloud_dir
        self._phase = Phase.UNPROVISIONED
        self._credentials: Credentials | None = None
        self._failure: LastFailure | None = None
        self._display = PairingDisplay()
        self._identify_s: int | None = None
        self._delivered = asyncio.Event()
        self._changed = asyncio.Event()
        self._deliveries: list[str] = []

    @property
    def phase(self) -> Phase:
        """The current lifecycle phase."""
        return self._phase

    @property
    def credentials(self) -> Credentials | None:
        """The credentials of the current (or last) attempt."""
        return self._credentials

    @property
    def last_failure(self) -> LastFailure | None:
        """Why the last attempt failed, if one did."""
        return self._failure

    @property
    def deliveries(self) -> tuple[str, ...]:
        """The nonce of every delivery answered with a receipt, in order, repeats included
        (an equal delivery during its attempt counts again): a test can tell from it whether
        one attempt's credentials were sent twice."""
        return tuple(self._deliveries)

    @property
    def identify_s(self) -> int | None:
        """Seconds of the last identify (blink) request."""
        return self._identify_s

    def info(self) -> DeviceInfo:
        """GET /v1/info."""
        ident = self.identity
        return DeviceInfo(
            protocol_version=PROTOCOL_VERSION,
            mac=ident.mac,
            family=ident.family,
            model=ident.model,
            firmware_version=ident.firmware_version,
            rssi=ident.rssi,
            state=self._phase.device_state,
            security_schemes=list(ident.security_schemes),
            last_failure=self._failure,
            device_name=self._credentials.device_name if self._credentials else None,
        )

    async def deliver(
        self, credentials: Credentials, scheme: SecurityScheme = SecurityScheme.PLAIN
    ) -> DeliveryReceipt:
        """Accept credentials in unprovisioned, pairing or failed (a new attempt); while an
        attempt runs, equal credentials get the same receipt and others `busy`."""
        if scheme not in self.identity.security_schemes:
            raise RequestError(DeviceErrorCode.UNSUPPORTED_SCHEME, f"{scheme} not accepted")
        if self.fault is FaultProfile.REJECTS_CREDENTIALS:
            raise RequestError(DeviceErrorCode.INVALID_REQUEST, "credentials rejected")
        if self._phase not in ACCEPTS_CREDENTIALS:
            if credentials != self._credentials:
                raise RequestError(
                    DeviceErrorCode.BUSY, f"already {self._phase} with other credentials"
                )
        else:
            self._credentials = credentials
            self._move(Phase.ACCEPTED)
            self._delivered.set()
            log.info("accepted credentials for %r", credentials.target_ssid)
        self._deliveries.append(credentials.nonce)
        return DeliveryReceipt(
            protocol_version=PROTOCOL_VERSION,
            nonce=credentials.nonce,
            state=self._phase.device_state,
        )

    def identify(self, seconds: int) -> None:
        """Blink for `seconds`."""
        self._identify_s = seconds

    def request_pairing(self) -> None:
        """The technician pressed the pairing button: an unprovisioned device goes into
        pairing with a blank display and advertises `pairing` until the orchestrator shows it
        a code (then it waits to be claimed) or clears the display. Pressing it again while
        pairing changes nothing; in any other phase it raises IllegalTransitionError."""
        if self._phase is Phase.PAIRING:
            return
        advance(self._phase, Phase.PAIRING)  # refuse before touching the display
        self._display = PairingDisplay()
        self._move(Phase.PAIRING)

    def show_pairing(self, display: PairingDisplay) -> None:
        """Show `display`; a code puts a waiting device into pairing, no code takes it out."""
        self._display = PairingDisplay(
            code=display.code, claim_url=display.claim_url, qr_svg=display.qr_svg
        )
        if display.code and self._phase is Phase.UNPROVISIONED:
            self._move(Phase.PAIRING)
        elif not display.code and self._phase is Phase.PAIRING:
            self._move(Phase.UNPROVISIONED)

    def pairing(self) -> PairingDisplay:
        """What the display shows now."""
        return self._display

    async def watch(self) -> AsyncGenerator[Phase, None]:
        """The current phase, then the phase after every change. A slow reader sees only the
        latest (right for re-advertising; on_change sees every move). Leaving early, close
        it with `contextlib.aclosing`."""
        while True:
            changed = self._changed
            yield self._phase
            await changed.wait()

    async def run(self) -> None:
        """After each delivery: leave, join, report online, or come back failed. Runs until
        cancelled (by the owner's TaskGroup)."""
        mac_var.set(self.identity.mac)
        while True:
            await self._delivered.wait()
            self._delivered.clear()
            if self._credentials is not None and self._phase is Phase.ACCEPTED:
                await self._attempt(self._credentials)

    def _move(self, target: Phase) -> None:
        self._phase = advance(self._phase, target)
        # Wake every watcher at once; the next ones wait on a fresh event.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        log.debug("phase %s", target)
        if self._on_change is not None:
            self._on_change(target)

    async def _attempt(self, credentials: Credentials) -> None:
        await self._sleep(self.timing.leave_after_s)
        await self._switch.leave_onboarding()
        self._move(Phase.JOINING)
        try:
            where = await self._join(credentials)
            self._move(Phase.CONNECTING)
            if self.fault is FaultProfile.NEVER_ONLINE:
                log.info("joined %r; never coming online (fault)", where.ssid)
                return
            report = await self._register(credentials)
            await self._stay_online(credentials, where, report)
        except OnlineError as exc:
            await self._switch.return_to_onboarding()
            self._failure = LastFailure(
                reason=exc.reason, message=exc.message, attempts=exc.attempts
            )
            self._move(Phase.FAILED)
            log.info("failed after %d attempts: %s", exc.attempts, exc.message)

    async def _join(self, credentials: Credentials) -> Attachment:
        ssid, attempts = credentials.target_ssid, self.timing.join_attempts
        attempt = 1
        while True:
            try:
                return await self._join_once(ssid, credentials.target_password)
            except JoinError as exc:
                log.info("join attempt %d of %d: %s", attempt, attempts, exc.message)
                if attempt >= attempts:
                    raise JoinError(exc.reason, exc.message, attempts=attempt) from exc
            attempt += 1
            await self._sleep(self.timing.join_retry_s)

    async def _join_once(self, ssid: str, password: str) -> Attachment:
        forced = JOIN_FAULTS.get(self.fault)
        if forced is not None:
            raise JoinError(forced, f"{ssid!r}: {forced} (fault profile {self.fault})")
        return await self._switch.join_target(ssid, password)

    async def _register(self, credentials: Credentials) -> CloudReport | None:
        """Register with the cloud of the credentials, once per attempt, before reporting
        online (the status says how it went)."""
        if credentials.cloud is None:
            return None
        if self._cloud_dir is None:
            return CloudReport(registered=False, error="this device keeps no cloud configuration")
        try:
            await request_provisioning(self._cloud_dir, credentials.cloud)
            started = await start_up(self._cloud_dir, sleep=self._sleep)
        except AgentError as exc:
            return CloudReport(registered=False, error=str(exc))
        return started.result.report()

    async def _stay_online(
        self, credentials: Credentials, where: Attachment, cloud: CloudReport | None = None
    ) -> None:
        """Report online and hold the connection, reconnecting after a drop; raises
        BrokerUnreachableError only if the device never got online."""
        online = Online(
            nonce=credentials.nonce,
            mac=self.identity.mac,
            ip=where.ip,
            firmware_version=self.identity.firmware_version,
            device_name=credentials.device_name,
            cloud=cloud,
        )
        reboots = LATE_REBOOTS if self.fault is FaultProfile.LATE else 0
        flaps = 1 if self.fault is FaultProfile.FLAPS else 0
        stale = self.fault is FaultProfile.STALE_RETAINED
        been_online = False
        while True:
            async with contextlib.AsyncExitStack() as stack:
                link = await self._open(stack, credentials, where, bounded=not been_online)
                try:
                    if reboots:
                        reboots -= 1
                        await link.drop(self.timing.connect_timeout_s)
                        await self._sleep(self.timing.reboot_s)
                        continue
                    if stale:
                        stale = False
                        await link.publish(_stale(online))
                        await self._sleep(self.timing.stale_gap_s)
                    await link.publish(online)
                    been_online = True
                    self._move(Phase.ONLINE)
                    log.info("online at %s", where.ip)
                    if flaps:
                        flaps -= 1
                        await self._sleep(self.timing.flap_s)
                        await link.drop(self.timing.connect_timeout_s)
                    else:
                        await link.wait_closed()
                except BrokerUnreachableError:
                    if not been_online:
                        raise
                if self._phase is Phase.ONLINE:
                    self._move(Phase.CONNECTING)
                log.info("connection lost; reconnecting")
            await self._sleep(self.timing.reconnect_s)

    async def _open(
        self,
        stack: contextlib.AsyncExitStack,
        credentials: Credentials,
        where: Attachment,
        *,
        bounded: bool,
    ) -> StatusLink:
        # Until it has been online, a device gives up after join_attempts and goes back to
        # report; once it has been, it keeps trying, as real firmware does.
        attempt = 0
        while True:
            attempt += 1
            try:
                return await stack.enter_async_context(
                    status_link(
                        credentials.mqtt,
                        mac=self.identity.mac,
                        address=where.broker,
                        timeout_s=self.timing.connect_timeout_s,
                    )
                )
            except BrokerUnreachableError as exc:
                log.info("broker attempt %d: %s", attempt, exc.message)
                if bounded and attempt >= self.timing.join_attempts:
                    raise BrokerUnreachableError(exc.message, attempts=attempt) from exc
            await self._sleep(self.timing.reconnect_s)


def _stale(online: Online) -> Online:
    """An online from an earlier attempt: same device, an old nonce."""
    return msgspec.structs.replace(online, nonce="stale-" + online.mac.replace(":", "").lower())
