"""The orchestrator's one connection to the target network's broker: the only module of the
orchestrator that imports aiomqtt.

It connects as the dynamic security admin, subscribes to every device's status topic and to
the plugin's answers after every connect, and reconnects with backoff for as long as it is
open. Account changes go out as command batches while it is connected; status messages feed
an OnlineBoard, which outlives any one connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl
from collections.abc import AsyncIterator, Sequence

import aiomqtt
import msgspec
from paho.mqtt.reasoncodes import ReasonCode

from orchestrator.broker.dynsec import (
    CONTROL_TOPIC,
    RESPONSE_TOPIC,
    AccountExistsError,
    Command,
    Responses,
    check_responses,
    create_commands,
    decode_responses,
    encode_batch,
    grant_commands,
    revoke_commands,
)
from orchestrator.broker.onlines import OnlineBoard
from orchestrator.broker.settings import BrokerSettings, broker_endpoint, status_filter
from orchestrator.ports.broker import (
    BrokerUnavailableError,
    DeviceAccount,
    DeviceAccounts,
    OnlineProofs,
)
from orchestrator.protocol.status import QOS

log = logging.getLogger(__name__)

KEEPALIVE_S = 30
RECONNECT_MIN_S = 0.1
# aiomqtt's incoming queue is unbounded unless told; past this it drops (and logs). Every
# device's retained status arrives at once after a reconnect, so leave room for a fleet.
MAX_QUEUED_INCOMING = 10_000


class _ConnectionLostError(Exception):
    """The connection a command batch went out on closed before the answer came."""


class BrokerLink:
    """An open, self-healing connection to the broker; only `BrokerLink.open` makes one."""

    def __init__(self, settings: BrokerSettings) -> None:
        self._settings = settings
        self._host, self._port, tls = broker_endpoint(settings.url)
        self._tls = ssl.create_default_context() if tls else None
        self._identifier = f"orchestrator-{secrets.token_hex(4)}"
        self._client: aiomqtt.Client | None = None
        self._changed = asyncio.Condition()
        self._pending: dict[str, asyncio.Future[Responses]] = {}
        self._board = OnlineBoard(settings.topic_base)
        self.accounts: DeviceAccounts = _Accounts(self, admin=settings.username)
        """Device accounts on the broker."""
        self.proofs: OnlineProofs = self._board
        """Online messages of devices, remembered across reconnections."""

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, settings: BrokerSettings) -> AsyncIterator[BrokerLink]:
        """Keep a connection to the broker until the block ends. Returns at once: an
        unreachable broker shows as BrokerUnavailableError from account changes."""
        link = cls(settings)
        async with asyncio.TaskGroup() as group:
            task = group.create_task(link._run(), name=f"broker link {link._where}")
            try:
                yield link
            finally:
                task.cancel()

    @property
    def connected(self) -> bool:
        """Whether the link is connected right now."""
        return self._client is not None

    @property
    def _where(self) -> str:
        return f"{self._host}:{self._port}"

    async def execute(self, commands: Sequence[Command]) -> None:
        """Run one batch of dynamic security commands and check the answer, waiting for a
        connection if need be, all within command_timeout_s.

        Every batch we send is idempotent (deletes first, "not found" is fine), so a batch
        whose connection died under it is sent again on the next one.
        """
        timeout_s = self._settings.command_timeout_s
        failed: aiomqtt.Client | None = None
        problem = "is not reachable"
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    client = await self._connection(other_than=failed)
                    problem = "did not answer"
                    try:
                        answer = await self._ask(client, commands)
                        break
                    except (aiomqtt.MqttError, _ConnectionLostError) as exc:
                        failed, problem = client, f"dropped the connection ({exc})"
                        log.debug("command batch interrupted, sending it again: %s", exc)
        except TimeoutError as exc:
            message = f"the broker at {self._where} {problem} within {timeout_s} s"
            raise BrokerUnavailableError(message) from exc
        check_responses(commands, answer)

    async def _connection(self, *, other_than: aiomqtt.Client | None) -> aiomqtt.Client:
        async with self._changed:
            await self._changed.wait_for(
                lambda: self._client is not None and self._client is not other_than
            )
            assert self._client is not None  # noqa: S101 - just waited for it
            return self._client

    async def _ask(self, client: aiomqtt.Client, commands: Sequence[Command]) -> Responses:
        correlation = secrets.token_hex(8)
        answered: asyncio.Future[Responses] = asyncio.get_running_loop().create_future()
        self._pending[correlation] = answered
        try:
            # QoS 0: the plugin's answer is the acknowledgement, and a lost connection fails
            # the answer at once (a QoS 1 PUBACK wait would sit out aiomqtt's own timeout).
            await client.publish(CONTROL_TOPIC, encode_batch(commands, correlation), qos=0)
            return await answered
        finally:
            del self._pending[correlation]

    async def _run(self) -> None:
        delay_s = RECONNECT_MIN_S
        in_outage = False
        while True:
            was_up = False
            try:
                async with self._session() as client:
                    was_up = True
                    again = "reconnected" if in_outage else "connected"
                    log.info("%s to the broker at %s", again, self._where)
                    in_outage, delay_s = False, RECONNECT_MIN_S
                    await self._set_client(client)
                    async for message in client.messages:
                        self._dispatch(message)
            except (aiomqtt.MqttError, TimeoutError) as exc:
                if in_outage:
                    log.debug("the broker at %s is still unavailable: %r", self._where, exc)
                else:
                    lost = "lost" if was_up else "cannot reach"
                    reason = str(exc) or type(exc).__name__
                    log.warning("%s the broker at %s (%s); retrying", lost, self._where, reason)
                in_outage = True
            finally:
                await self._set_client(None)
            await asyncio.sleep(delay_s)
            delay_s = min(2 * delay_s, self._settings.reconnect_max_s)

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[aiomqtt.Client]:
        settings = self._settings
        client = aiomqtt.Client(
            self._host,
            self._port,
            username=settings.username,
            password=settings.password,
            identifier=self._identifier,
            timeout=settings.connect_timeout_s,
            keepalive=KEEPALIVE_S,
            tls_context=self._tls,
            max_queued_incoming_messages=MAX_QUEUED_INCOMING,
        )
        async with contextlib.AsyncExitStack() as stack:
            async with asyncio.timeout(settings.connect_timeout_s):
                await stack.enter_async_context(client)
                # A clean session forgets subscriptions: make them again on every connect.
                # The broker then sends every retained status again.
                topics: list[tuple[str, int]] = [
                    (RESPONSE_TOPIC, QOS),
                    (status_filter(settings.topic_base), QOS),
                ]
                granted = await client.subscribe(topics)
            if any(_refused(code) for code in granted):
                raise aiomqtt.MqttError(f"{settings.username} may not subscribe to what it needs")
            yield client

    async def _set_client(self, client: aiomqtt.Client | None) -> None:
        async with self._changed:
            self._client = client
            self._changed.notify_all()
        if client is None:
            for answered in self._pending.values():
                if not answered.done():
                    answered.set_exception(_ConnectionLostError("connection closed"))

    def _dispatch(self, message: aiomqtt.Message) -> None:
        topic, payload = message.topic.value, bytes(message.payload)
        if topic == RESPONSE_TOPIC:
            self._answer(payload)
        else:
            self._board.receive(topic, payload)

    def _answer(self, payload: bytes) -> None:
        try:
            answer = decode_responses(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("ignored an unreadable dynamic security answer")
            return
        # Answers to other administrators' commands come here as well: not ours, no match.
        answered = self._pending.get(answer.correlation or "")
        if answered is not None and not answered.done():
            answered.set_result(answer)


class _Accounts:
    """DeviceAccounts over a BrokerLink."""

    def __init__(self, link: BrokerLink, *, admin: str) -> None:
        self._link = link
        self._admin = admin

    async def grant(self, account: DeviceAccount) -> None:
        """Create the account; replace it (one batch: delete, then create) when it exists."""
        self._check(account.username)
        try:
            await self._link.execute(create_commands(account))
        except AccountExistsError:
            await self._link.execute(grant_commands(account))

    async def revoke(self, username: str) -> None:
        """Remove the account; the broker disconnects its clients."""
        self._check(username)
        await self._link.execute(revoke_commands(username))

    def _check(self, username: str) -> None:
        # The admin account must stay, or the orchestrator locks itself out.
        if username == self._admin:
            raise ValueError(f"{username!r} is the orchestrator's own account")


def _refused(code: int | ReasonCode) -> bool:
    return code.is_failure if isinstance(code, ReasonCode) else code >= 0x80
