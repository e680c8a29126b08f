"""The provisioning strategy contract (seed 002): detect, pre-check, provision, confirm and
rollback for one device family.

Strategies hold the business rules and do no I/O: each stage is a generator that yields
requests (`requests.py`) and receives their replies, like httpx's `Auth.auth_flow`. The
engine carries the requests, applies the timeout/retry/circuit policy, persists every step
and emits audit entries, metrics and events; a strategy's tests need no event loop.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from orchestrator.domain.attempt import Attempt
from orchestrator.domain.mac import Mac
from orchestrator.ports.broker import DeviceAccount
from orchestrator.protocol.messages import CloudProvisioning, DeliveryReceipt, DeviceInfo
from orchestrator.protocol.status import Online
from orchestrator.provisioning.requests import Flow


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """Where the session sends its devices. Holds the Wi-Fi password: never log it."""

    ssid: str
    password: str
    cloud: CloudProvisioning | None = None

    def __repr__(self) -> str:
        return f"Target(ssid={self.ssid!r})"


class Issued(msgspec.Struct, frozen=True, kw_only=True):
    """What the engine issued for one attempt: a nonce and a broker account (with its
    password: never log it), and where the broker is."""

    mac: Mac
    nonce: str
    account: DeviceAccount
    broker_url: str
    topic_prefix: str
    container_id: str | None = None

    def __repr__(self) -> str:
        return f"Issued(mac={self.mac!r}, username={self.account.username!r})"


class ProvisioningStrategy(Protocol):
    """One device family's provisioning rules."""

    @property
    def name(self) -> str:
        """The family this strategy serves (also its name in attempts and audit entries)."""
        ...

    def detect(self, info: DeviceInfo) -> bool:
        """Whether this strategy can provision the device `info` describes."""
        ...

    def pre_check(self, info: DeviceInfo, target: Target) -> None:
        """Refuse (raise StepError) what cannot work before anything is sent: a device in
        the wrong state, credentials the device cannot take."""
        ...

    def device_name(self, info: DeviceInfo) -> str:
        """The name the device gets on the target network."""
        ...

    def provision(
        self, info: DeviceInfo, target: Target, issued: Issued, device_name: str
    ) -> Flow[DeliveryReceipt]:
        """Grant the broker account and deliver the credentials."""
        ...

    def confirm(self, attempt: Attempt) -> Flow[Online]:
        """Wait for the proof that the device is online with this attempt's credentials."""
        ...

    def rollback(self, attempt: Attempt) -> Flow[None]:
        """Undo what a failed attempt left behind (its broker account)."""
        ...
