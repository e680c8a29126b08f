"""Watching a provisioning batch on the namespace tier: the appliance's event stream as a
dashboard sees it, and the target broker as its administrator and its devices see it.

Everything here runs on the loop that runs the appliance (the Pi's namespace), where both
the onboarding bridge and the broker are reachable.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from typing import Any

import aiomqtt

from orchestrator.broker.dynsec import CONTROL_TOPIC, RESPONSE_TOPIC
from orchestrator.broker.link import BrokerLink
from orchestrator.broker.settings import (
    BrokerSettings,
    broker_endpoint,
    device_status_topic,
    device_username,
)
from orchestrator.domain.candidate import CandidateState
from orchestrator.domain.mac import Mac, parse_mac
from orchestrator.ports.broker import DeviceAccount
from orchestrator.protocol.status import QOS, Online, StatusMessage, decode_status, encode_status
from orchestrator.streaming.bus import Subscription

WAIT_S = 30.0
BROKER_WAIT_S = 10.0
HOLDING_A_SLOT = frozenset({CandidateState.PROVISIONED, CandidateState.VERIFYING})
"""States a candidate is only in while the engine holds a wave slot for it."""
SETTLED = frozenset({CandidateState.VERIFIED, CandidateState.FAILED})


class Progress:
    """What the appliance's events have told a dashboard so far."""

    def __init__(self, subscription: Subscription) -> None:
        self._subscription = subscription
        self.discovered: set[Mac] = set()
        self.states: dict[Mac, CandidateState] = {}
        self.peak_holding = 0
        """The most candidates at once in a state only a wave slot allows."""

    @property
    def holding(self) -> int:
        """Candidates in `provisioned` or `verifying` right now."""
        return sum(state in HOLDING_A_SLOT for state in self.states.values())

    def settled(self, macs: set[Mac]) -> bool:
        """Whether every device of `macs` is verified or failed."""
        return all(self.states.get(mac) in SETTLED for mac in macs)

    async def step(self, timeout_s: float = WAIT_S) -> None:
        """Take the next event (TimeoutError when none comes within `timeout_s`)."""
        frame = await self._subscription.next(timeout_s)
        if frame is None:
            raise TimeoutError
        self._take(json.loads(frame.data))

    async def until(self, done: Callable[[Progress], bool], what: str) -> None:
        """Read events until `done(self)` holds."""
        try:
            async with asyncio.timeout(WAIT_S):
                while not done(self):
                    await self.step()
        except TimeoutError:
            states = {str(s): sum(v is s for v in self.states.values()) for s in CandidateState}
            raise AssertionError(
                f"waited in vain for {what}: {len(self.discovered)} discovered; {states}"
            ) from None

    def _take(self, event: dict[str, Any]) -> None:
        payload = event["payload"]
        if event["type"] == "device.discovered":
            mac = parse_mac(payload["mac"])
            self.discovered.add(mac)
            self.states.setdefault(mac, CandidateState.DISCOVERED)
        elif event["type"] == "device.state_changed":
            self.states[parse_mac(payload["mac"])] = CandidateState(payload["new_state"])
            self.peak_holding = max(self.peak_holding, self.holding)


def _client(
    settings: BrokerSettings, username: str, password: str, identifier: str
) -> aiomqtt.Client:
    host, port, _ = broker_endpoint(settings.url)
    return aiomqtt.Client(
        host, port, username=username, password=password, identifier=identifier,
        timeout=BROKER_WAIT_S,
    )  # fmt: skip


def _admin(settings: BrokerSettings) -> aiomqtt.Client:
    identifier = f"test-admin-{secrets.token_hex(4)}"
    return _client(settings, settings.username, settings.password, identifier)


async def _list_clients(admin: aiomqtt.Client) -> str:
    """Ask the plugin for its clients; the correlation its answer will carry."""
    correlation = secrets.token_hex(8)
    command = {"command": "listClients", "count": -1, "correlationData": correlation}
    await admin.subscribe(RESPONSE_TOPIC, qos=QOS)
    await admin.publish(CONTROL_TOPIC, json.dumps({"commands": [command]}), qos=QOS)
    return correlation


def _answer(message: aiomqtt.Message, correlation: str) -> dict[str, Any] | None:
    if message.topic.value != RESPONSE_TOPIC:
        return None
    for response in json.loads(bytes(message.payload))["responses"]:
        if response.get("correlationData") == correlation:
            assert "error" not in response, response
            answer: dict[str, Any] = response
            return answer
    return None


async def retained_status(settings: BrokerSettings, mac: Mac) -> StatusMessage | None:
    """The status the broker retains for device `mac`, read as its administrator."""
    topic = device_status_topic(settings, mac)
    async with asyncio.timeout(BROKER_WAIT_S), _admin(settings) as admin:
        await admin.subscribe(topic, qos=QOS)
        # A retained message comes right after the subscription is granted, so before the
        # answer to a command sent afterwards: that answer says there was none.
        correlation = await _list_clients(admin)
        async for message in admin.messages:
            if message.topic.value == topic:
                return decode_status(bytes(message.payload))
            if _answer(message, correlation) is not None:
                return None
    raise AssertionError("the broker never answered listClients")


async def leave_retained_online(settings: BrokerSettings, mac: Mac, online: Online) -> str:
    """What an earlier attempt leaves behind: device `mac` gets an account, publishes
    `online` retained on its status topic, and goes. Returns that account's password."""
    username = device_username(mac)
    account = DeviceAccount(
        username=username,
        password=secrets.token_urlsafe(12),
        client_id=username,
        status_topic=device_status_topic(settings, mac),
    )
    async with BrokerLink.open(settings) as link:
        await link.accounts.grant(account)
    async with (
        asyncio.timeout(BROKER_WAIT_S),
        _client(settings, account.username, account.password, account.client_id) as device,
    ):
        await device.publish(account.status_topic, encode_status(online), qos=QOS, retain=True)
    return account.password


async def can_connect(settings: BrokerSettings, username: str, password: str) -> bool:
    """Whether the broker lets device `username` in with `password` (its client id is its
    username, as the engine grants it)."""
    try:
        async with asyncio.timeout(BROKER_WAIT_S), _client(settings, username, password, username):
            return True
    except aiomqtt.MqttCodeError as exc:
        if "Not authorized" not in str(exc):
            raise
        return False


async def broker_accounts(settings: BrokerSettings) -> set[str]:
    """Every client account the dynamic security plugin holds."""
    async with asyncio.timeout(BROKER_WAIT_S), _admin(settings) as admin:
        correlation = await _list_clients(admin)
        async for message in admin.messages:
            if (answer := _answer(message, correlation)) is not None:
                return set(answer["data"]["clients"])
    raise AssertionError("the broker never answered listClients")
