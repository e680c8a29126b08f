"""The target network's MQTT broker, as the provisioning engine uses it: per-device accounts,
and proof that a device came online there."""

from __future__ import annotations

from typing import Protocol

import msgspec

from orchestrator.domain.mac import Mac
from orchestrator.protocol.status import Online


class BrokerUnavailableError(Exception):
    """The broker did not answer or refused the orchestrator. Maps to MQTT_UNAVAILABLE."""


class DeviceAccount(msgspec.Struct, frozen=True, kw_only=True):
    """One device's broker account: it may connect as `username` with `password` and client
    id `client_id`, and publish to `status_topic` only (its will included). Never log it."""

    username: str
    password: str
    client_id: str
    status_topic: str

    def __repr__(self) -> str:
        return f"DeviceAccount(username={self.username!r}, status_topic={self.status_topic!r})"


class DeviceAccounts(Protocol):
    """Creates and removes device accounts on the broker, without disturbing other clients."""

    async def grant(self, account: DeviceAccount) -> None:
        """Create the account, or replace it: afterwards only this password works for it.
        BrokerUnavailableError when the broker cannot be told."""
        ...

    async def revoke(self, username: str) -> None:
        """Remove the account (idempotent); a client connected with it is disconnected."""
        ...


class OnlineProofs(Protocol):
    """Status messages on the broker, matched against the nonce of an attempt."""

    async def wait_online(self, status_topic: str, mac: Mac, nonce: str) -> Online:
        """The first `online` on `status_topic` from `mac` carrying `nonce`, retained or live,
        including one that arrived before this call. Waits as long as it takes (the caller
        bounds it with a timeout) and across broker reconnections; a message with another
        nonce (a stale retained one) never counts."""
        ...
