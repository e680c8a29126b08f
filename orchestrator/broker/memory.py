"""In-memory stand-ins for the broker's ports, for tests of whoever uses them. The contract
suite (tests/broker) runs the same checks against these and against a real Mosquitto."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from types import MappingProxyType

from orchestrator.broker.onlines import OnlineBoard
from orchestrator.broker.settings import DEFAULT_TOPIC_BASE, BrokerSettings, is_status_topic
from orchestrator.domain.mac import Mac
from orchestrator.ports.broker import BrokerUnavailableError, DeviceAccount
from orchestrator.protocol.status import Online

DEFAULT_ADMIN = BrokerSettings().username


class MemoryAccounts:
    """DeviceAccounts in a dict, recording every grant and revoke. Set `available` to False
    to have both fail as with an unreachable broker."""

    def __init__(self, *, admin: str = DEFAULT_ADMIN) -> None:
        self._admin = admin
        self._accounts: dict[str, DeviceAccount] = {}
        self.grants: list[DeviceAccount] = []
        """Every account granted, in order."""
        self.revokes: list[str] = []
        """Every username revoked, in order."""
        self.available = True

    @property
    def accounts(self) -> Mapping[str, DeviceAccount]:
        """The accounts that exist now, by username."""
        return MappingProxyType(self._accounts)

    async def grant(self, account: DeviceAccount) -> None:
        """Create or replace the account."""
        self._check(account.username)
        self.grants.append(account)
        self._accounts[account.username] = account

    async def revoke(self, username: str) -> None:
        """Remove the account (idempotent)."""
        self._check(username)
        self.revokes.append(username)
        self._accounts.pop(username, None)

    def authenticate(self, username: str, password: str, client_id: str) -> bool:
        """Whether the broker would let this connection in."""
        account = self._accounts.get(username)
        return (
            account is not None
            and secrets.compare_digest(account.password.encode(), password.encode())
            and account.client_id == client_id
        )

    def may_publish(self, username: str, topic: str) -> bool:
        """Whether account `username` may publish on `topic` (its status topic only)."""
        account = self._accounts.get(username)
        return account is not None and account.status_topic == topic

    def _check(self, username: str) -> None:
        if username == self._admin:
            raise ValueError(f"{username!r} is the orchestrator's own account")
        if not self.available:
            raise BrokerUnavailableError("the broker is not reachable (memory fake)")


class MemoryProofs:
    """OnlineProofs over messages that tests `publish`, with the broker's retained semantics
    and the link's connection: while `disconnect`ed, only retained messages survive, and
    `reconnect` delivers them, as a resubscription does."""

    def __init__(self, *, topic_base: str = DEFAULT_TOPIC_BASE) -> None:
        self._topic_base = topic_base
        self._board = OnlineBoard(topic_base)
        self._retained: dict[str, bytes] = {}
        self._connected = True

    async def wait_online(self, status_topic: str, mac: Mac, nonce: str) -> Online:
        """The first `online` on `status_topic` from `mac` carrying `nonce`."""
        return await self._board.wait_online(status_topic, mac, nonce)

    def publish(self, topic: str, payload: bytes, *, retain: bool) -> None:
        """A message on the broker; an empty retained payload clears the topic's retained one."""
        if retain and payload:
            self._retained[topic] = payload
        elif retain:
            self._retained.pop(topic, None)
        if self._connected and is_status_topic(self._topic_base, topic):
            self._board.receive(topic, payload)

    def disconnect(self) -> None:
        """The link loses the broker: messages that are not retained go by unseen."""
        self._connected = False

    def reconnect(self) -> None:
        """The link is back and subscribed again: every retained status arrives."""
        self._connected = True
        for topic, payload in list(self._retained.items()):
            if is_status_topic(self._topic_base, topic):
                self._board.receive(topic, payload)
