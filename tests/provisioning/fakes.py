"""Fakes for the engine's tests: a device transport with scripted devices that, like the
reference agent, come online (publish their status) after taking credentials, and a host
that keeps candidates the way the batch service does."""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field

import msgspec

from orchestrator.broker.memory import MemoryProofs
from orchestrator.domain.candidate import (
    Candidate,
    CandidateEvent,
    CandidateState,
    CloudRegistration,
    Failure,
    apply_candidate_event,
)
from orchestrator.domain.mac import Mac
from orchestrator.domain.session import SessionConfig
from orchestrator.ports.devices import (
    DeviceRejectedError,
    DeviceTimeoutError,
    DeviceUnreachableError,
    WorkOrder,
)
from orchestrator.protocol import PROTOCOL_VERSION
from orchestrator.protocol.messages import (
    CloudProvisioning,
    Credentials,
    DeliveryReceipt,
    DeviceInfo,
    DeviceState,
    PairingDisplay,
    SecurityScheme,
)
from orchestrator.protocol.status import CloudReport, Online, encode_status, status_topic
from tests.fakes import T0


class Behaviour(enum.Enum):
    """How a fake device acts."""

    GOOD = "good"
    SILENT = "silent"
    """Never answers (connection refused)."""
    REJECTS = "rejects"
    """Answers every delivery with 400."""
    LOSES_ANSWER = "loses_answer"
    """Takes the first delivery but its answer never arrives (a read timeout)."""
    NEVER_ONLINE = "never_online"
    """Takes credentials, never reports online."""
    FLAKY_INFO = "flaky_info"
    """The first two info requests fail, then it is good."""


@dataclass
class FakeDevice:
    """One scripted device."""

    mac: Mac
    ip: str
    family: str = "esp32-cam"
    behaviour: Behaviour = Behaviour.GOOD
    state: DeviceState = DeviceState.UNPROVISIONED
    deliveries: list[Credentials] = field(default_factory=list)
    info_calls: int = 0


class FakeTransport:
    """DeviceTransport over FakeDevices; a device that takes credentials publishes its
    online status (retained) on the MemoryProofs broker, as the agent does."""

    def __init__(self, proofs: MemoryProofs) -> None:
        self.devices: dict[str, FakeDevice] = {}
        self._proofs = proofs
        self.gate: asyncio.Event | None = None
        """When set, deliveries wait for it (to hold devices in flight)."""
        self.waiting = 0
        """Deliveries waiting at the gate."""
        self.arrived = asyncio.Condition()

    def add(self, device: FakeDevice) -> FakeDevice:
        self.devices[device.ip] = device
        return device

    async def info(self, ip: str) -> DeviceInfo:
        device = self._device(ip)
        device.info_calls += 1
        if device.behaviour is Behaviour.FLAKY_INFO and device.info_calls <= 2:
            raise DeviceUnreachableError(f"{ip}: connection refused")
        return DeviceInfo(
            protocol_version=PROTOCOL_VERSION,
            mac=device.mac,
            family=device.family,
            model="m",
            firmware_version="1.4.2",
            rssi=-50,
            state=device.state,
            security_schemes=["plain"],
        )

    async def show_pairing(self, ip: str, display: PairingDisplay) -> None:
        self._device(ip)

    async def deliver(
        self, ip: str, credentials: Credentials, scheme: SecurityScheme
    ) -> DeliveryReceipt:
        device = self._device(ip)
        if device.behaviour is Behaviour.REJECTS:
            raise DeviceRejectedError("400 invalid_request", code="invalid_request", status=400)
        if self.gate is not None:
            async with self.arrived:
                self.waiting += 1
                self.arrived.notify_all()
            await self.gate.wait()
        device.deliveries.append(credentials)
        device.state = DeviceState.PROVISIONED
        if device.behaviour is not Behaviour.NEVER_ONLINE:
            report = None
            if credentials.cloud is not None:  # registers, as a thermal camera does
                report = CloudReport(registered=True, device_name="thermal-camera-ABC123")
            online = Online(
                nonce=credentials.nonce,
                mac=device.mac,
                ip="10.42.0.9",
                firmware_version="1.4.2",
                device_name=credentials.device_name,
                cloud=report,
            )
            topic = status_topic(credentials.mqtt.topic_prefix)
            self._proofs.publish(topic, encode_status(online), retain=True)
        if device.behaviour is Behaviour.LOSES_ANSWER and len(device.deliveries) == 1:
            raise DeviceTimeoutError(f"{ip}: no answer in time")
        return DeliveryReceipt(
            protocol_version=PROTOCOL_VERSION, nonce=credentials.nonce, state=device.state
        )

    def _device(self, ip: str) -> FakeDevice:
        device = self.devices.get(ip)
        if device is None or device.behaviour is Behaviour.SILENT:
            raise DeviceUnreachableError(f"{ip}: connection refused")
        return device


class FakeHost:
    """ProgressSink keeping candidates in a dict, applying events with the domain rules."""

    def __init__(self, config: SessionConfig | None = None) -> None:
        self.candidates: dict[Mac, Candidate] = {}
        self.events: list[tuple[Mac, CandidateEvent]] = []
        self.config = config or SessionConfig()
        self.paused = False
        self.cloud: CloudProvisioning | None = None
        self.changed = asyncio.Condition()
        self.hold: tuple[CandidateEvent, asyncio.Event] | None = None
        """Reports of this event wait for the event to be set (and say so in `held`)."""
        self.held = asyncio.Event()

    def add(self, mac: Mac, ip: str, state: CandidateState = CandidateState.PROVISIONING) -> None:
        self.candidates[mac] = Candidate(
            session_id="sess_1",
            mac=mac,
            ip=ip,
            state=state,
            rssi=-50,
            firmware_version="1.4.2",
            discovered_at=T0,
            updated_at=T0,
        )

    async def order(self, session_id: str, mac: Mac) -> WorkOrder | None:
        candidate = self.candidates.get(mac)
        if self.paused or candidate is None:
            return None
        return WorkOrder(
            session_id=session_id,
            mac=mac,
            ip=candidate.ip,
            state=candidate.state,
            target_ssid="Factory",
            target_password="factory-pass",
            config=self.config,
            cloud=self.cloud,
        )

    async def record(
        self,
        session_id: str,
        mac: Mac,
        event: CandidateEvent,
        failure: Failure | None = None,
        cloud: CloudRegistration | None = None,
    ) -> None:
        if self.hold is not None and self.hold[0] is event:
            self.held.set()
            await self.hold[1].wait()
        async with self.changed:
            self.candidates[mac] = apply_candidate_event(
                self.candidates[mac], event, T0, max_retries=3, failure=failure, cloud=cloud
            )
            self.events.append((mac, event))
            self.changed.notify_all()

    async def settled(self, macs: list[Mac], timeout_s: float = 10.0) -> dict[Mac, Candidate]:
        """Wait until every device in `macs` is verified or failed."""
        done = (CandidateState.VERIFIED, CandidateState.FAILED)
        async with asyncio.timeout(timeout_s), self.changed:
            await self.changed.wait_for(lambda: all(self.candidates[m].state in done for m in macs))
        return {m: self.candidates[m] for m in macs}

    def retry(self, mac: Mac) -> None:
        self.candidates[mac] = msgspec.structs.replace(
            apply_candidate_event(self.candidates[mac], CandidateEvent.RETRY, T0, max_retries=3)
        )
