"""One MQTT connection to the ThingsBoard stand-in, run as ThingsBoard's `MqttTransportHandler`
runs it: provision-only sessions (user name or client id `provision`), token-authenticated
device sessions, and the faults a test injects. Also the stand-in's spec and its journal."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import msgspec

from orchestrator.sim.mqtt_wire import (
    PROTOCOL_LEVEL,
    PROTOCOL_NAME,
    SUBACK_FAILURE,
    ConnAck,
    Connect,
    ConnectReturnCode,
    Disconnect,
    Framer,
    Packet,
    PingReq,
    PingResp,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    encode,
)
from orchestrator.sim.thingsboard_registry import (
    Device,
    MalformedRequestError,
    ProvisionProfile,
    ProvisionStatus,
    Registry,
)

log = logging.getLogger(__name__)

PROVISION = "provision"
"""The user name (or client id) of a provision-only session."""
REQUEST_TOPIC = "/provision/request"
RESPONSE_TOPIC = "/provision/response"
TELEMETRY_TOPIC = "v1/devices/me/telemetry"
ATTRIBUTES_TOPIC = "v1/devices/me/attributes"
DEVICE_FILTERS = frozenset(
    {
        ATTRIBUTES_TOPIC,
        "v1/devices/me/attributes/response/+",
        "v1/devices/me/rpc/request/+",
        "v1/devices/me/rpc/response/+",
    }
)
"""What a device session may subscribe to; anything else gets SUBACK 0x80."""
MAX_QOS = 1
READ_CHUNK = 65536


class ThingsBoardSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the stand-in holds at start and how it behaves. Durations in seconds."""

    profiles: tuple[ProvisionProfile, ...] = ()
    devices: dict[str, str] = msgspec.field(default_factory=dict)
    """Devices that exist from the start, name -> access token ("" = generated)."""
    close_after_answer_s: float = 60.0
    """ThingsBoard closes a provision connection this long after answering."""
    require_subscription: bool = True
    """Answer only a connection subscribed to /provision/response. ThingsBoard itself
    publishes the answer anyway (QoS 1); False reproduces that."""
    repeat_pre_provisioned: bool = True
    """A pre-provisioned device asking again gets the same credentials (older releases);
    False: FAILURE, as the current source answers once provisionState is set."""
    legacy_response_fields: bool = False
    """Answer with the old docs' field names (`provisionDeviceStatus`, `accessToken`)."""
    ip_rate_limit: bool = False
    """Block an IP after `max_wrong_credentials_per_ip` refused CONNECTs in a row."""
    max_wrong_credentials_per_ip: int = 10
    ip_block_s: float = 60.0
    connect_timeout_s: float = 10.0
    """How long a new connection may take to send CONNECT."""
    idle_timeout_s: float = 600.0
    """The read limit of a session with keepalive 0 (otherwise 1.5 x keepalive)."""
    write_timeout_s: float = 10.0
    max_payload_bytes: int = 65536
    """ThingsBoard's default `netty.max_payload_size`: a longer packet closes the connection."""


class ProvisionFault(StrEnum):
    """What happens to a provision request instead of the normal answer."""

    DROP_REQUEST = "drop_request"
    """Lost on the way in: not processed, nothing sent back, the connection stays open."""
    LOSE_ANSWER = "lose_answer"
    """Processed (a device may be created), but neither PUBACK nor answer arrives."""
    CLOSE_INSTEAD = "close_instead"
    """Processed, then the connection is closed instead of answering."""


@dataclass(frozen=True, slots=True)
class ProvisionRecord:
    """One provision request: which connection sent it, the device name it asked for ("" if
    none or unreadable), the status answered (None: no answer), the fault injected, and the
    device it created or found."""

    connection: int
    requested_name: str
    status: ProvisionStatus | None
    fault: ProvisionFault | None = None
    device: str | None = None


class SessionClosedError(Exception):
    """The session broke ThingsBoard's rules (a malformed or forbidden packet): it closes."""


class Journal:
    """What the stand-in saw, and a wake-up for whoever waits on it."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.provisions: list[ProvisionRecord] = []
        self.telemetry: dict[str, list[Any]] = {}
        self.attributes: dict[str, list[Any]] = {}
        self._changed = asyncio.Event()

    def notify(self) -> None:
        """Wake every waiter to check its condition again."""
        self._changed.set()
        self._changed = asyncio.Event()

    def count(self, what: str) -> None:
        """One more `what` (a `Stats` field name)."""
        self.counts[what] += 1
        self.notify()

    def record(self, record: ProvisionRecord) -> None:
        """Keep a provision request's record."""
        self.provisions.append(record)
        self.notify()

    def store(self, topic: str, device: str, data: Any) -> None:
        """Keep a telemetry or attributes payload of `device`."""
        store = self.telemetry if topic == TELEMETRY_TOPIC else self.attributes
        store.setdefault(device, []).append(data)
        if topic == TELEMETRY_TOPIC:
            self.counts["telemetry_messages"] += 1
        self.notify()

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float) -> None:
        """Return once `predicate()` holds; TimeoutError after `timeout_s`."""
        async with asyncio.timeout(timeout_s):
            while True:
                changed = self._changed
                if predicate():
                    return
                await changed.wait()


class IpLimiter:
    """ThingsBoard's transport IP limits: refused CONNECTs in a row per IP, then a block."""

    def __init__(self, spec: ThingsBoardSpec, clock: Callable[[], float]) -> None:
        self._spec = spec
        self._clock = clock
        self._failures: Counter[str] = Counter()
        self._blocked_until: dict[str, float] = {}

    def blocked(self, ip: str) -> bool:
        """Whether connections from `ip` are closed at once right now."""
        until = self._blocked_until.get(ip)
        if until is not None and self._clock() >= until:
            del self._blocked_until[ip]
            return False
        return until is not None

    def on_failure(self, ip: str) -> None:
        """A CONNECT from `ip` was refused."""
        if not self._spec.ip_rate_limit:
            return
        self._failures[ip] += 1
        if self._failures[ip] >= self._spec.max_wrong_credentials_per_ip:
            del self._failures[ip]
            self._blocked_until[ip] = self._clock() + self._spec.ip_block_s

    def on_success(self, ip: str) -> None:
        """A CONNECT from `ip` authenticated: the count starts again."""
        self._failures.pop(ip, None)


def requested_name(payload: bytes) -> str:
    """The `deviceName` a request asks for, for the record ("" if none or unreadable)."""
    with contextlib.suppress(msgspec.DecodeError):
        request = msgspec.json.decode(payload)
        if isinstance(request, dict) and isinstance(name := request.get("deviceName"), str):
            return name
    return ""


class Session:
    """One MQTT connection: reads packets, answers them, closes where ThingsBoard closes.
    `run` returns when the connection must close; SessionClosedError, MalformedPacketError
    and MalformedRequestError mean a protocol close, TimeoutError a silent client (or the
    close after a provision answer)."""

    def __init__(
        self,
        spec: ThingsBoardSpec,
        registry: Registry,
        limiter: IpLimiter,
        journal: Journal,
        provision_faults: deque[ProvisionFault],
        *,
        connection: int,
        ip: str,
        writer: asyncio.StreamWriter,
    ) -> None:
        self._spec = spec
        self._registry = registry
        self._limiter = limiter
        self._journal = journal
        self._faults = provision_faults
        self._connection = connection
        self._ip = ip
        self._writer = writer
        self._connected = False
        self._provision_only = False
        self._device: Device | None = None
        self._keepalive_s = 0
        self._close_at: float | None = None
        self._subscriptions: dict[str, int] = {}
        self._packet_ids = itertools.cycle(range(1, 0x10000))

    async def run(self, reader: asyncio.StreamReader) -> None:
        """Serve the connection until it must close."""
        loop = asyncio.get_running_loop()
        framer = Framer(max_packet_bytes=self._spec.max_payload_bytes)
        deadline = loop.time() + self._spec.connect_timeout_s
        while True:
            async with asyncio.timeout_at(deadline):
                data = await reader.read(READ_CHUNK)
            if not data:
                return
            for packet in framer.feed(data):
                if self._on_packet(packet):
                    await self._flush()
                    return
            await self._flush()
            deadline = self._deadline(loop.time())

    def _deadline(self, now: float) -> float:
        idle_s = self._keepalive_s * 1.5 if self._keepalive_s else self._spec.idle_timeout_s
        deadline = now + idle_s
        return deadline if self._close_at is None else min(deadline, self._close_at)

    def _send(self, packet: Packet) -> None:
        self._writer.write(encode(packet))

    async def _flush(self) -> None:
        async with asyncio.timeout(self._spec.write_timeout_s):
            await self._writer.drain()

    def _on_packet(self, packet: Packet) -> bool:
        """Handle one packet; True when the connection must close now."""
        if not self._connected:
            if not isinstance(packet, Connect):
                raise SessionClosedError("first packet is not CONNECT")
            return self._on_connect(packet)
        close = False
        match packet:
            case Publish(qos=qos) if qos > MAX_QOS:
                raise SessionClosedError("QoS 2 PUBLISH is not served")
            case Publish():
                close = self._on_publish(packet)
            case Subscribe():
                self._on_subscribe(packet)
            case Unsubscribe(packet_id=packet_id, topics=topics):
                for topic in topics:
                    self._subscriptions.pop(topic, None)
                self._send(UnsubAck(packet_id))
            case PingReq():
                self._send(PingResp())
            case PubAck():
                pass  # the client's acknowledgement of a QoS 1 answer
            case Disconnect():
                close = True
            case _:
                raise SessionClosedError(f"{type(packet).__name__} from a client")
        return close

    def _on_connect(self, packet: Connect) -> bool:
        self._connected = True
        self._keepalive_s = packet.keepalive_s
        if packet.protocol_name != PROTOCOL_NAME or packet.protocol_level != PROTOCOL_LEVEL:
            self._send(ConnAck(ConnectReturnCode.UNACCEPTABLE_PROTOCOL_VERSION))
            return True
        # ThingsBoard checks neither the password nor the profile here: any client calling
        # itself `provision` gets a provision-only session.
        if PROVISION in (packet.username, packet.client_id):
            self._provision_only = True
            self._journal.count("provision_sessions")
            self._send(ConnAck(ConnectReturnCode.ACCEPTED))
            return False
        password = None if packet.password is None else packet.password.decode(errors="replace")
        self._device = self._registry.authenticate(packet.client_id, packet.username, password)
        if self._device is None:
            self._limiter.on_failure(self._ip)
            self._journal.count("refused_connects")
            self._send(ConnAck(ConnectReturnCode.NOT_AUTHORIZED))
            return True
        self._limiter.on_success(self._ip)
        self._journal.count("device_sessions")
        self._send(ConnAck(ConnectReturnCode.ACCEPTED))
        return False

    def _on_subscribe(self, packet: Subscribe) -> None:
        # A provision session may subscribe to its response topic only; other filters get
        # SUBACK 0x80 (TOPIC_FILTER_INVALID in MQTT 5 terms), the connection stays open.
        allowed = {RESPONSE_TOPIC} if self._provision_only else DEVICE_FILTERS
        codes = []
        for topic, qos in packet.subscriptions:
            if topic in allowed:
                self._subscriptions[topic] = min(qos, MAX_QOS)
                codes.append(min(qos, MAX_QOS))
            else:
                codes.append(SUBACK_FAILURE)
        self._send(SubAck(packet.packet_id, tuple(codes)))

    def _ack(self, packet: Publish) -> None:
        if packet.qos:
            self._send(PubAck(packet.packet_id))

    def _on_publish(self, packet: Publish) -> bool:
        if self._provision_only:
            return self._on_provision_publish(packet)
        if self._device is not None and packet.topic in (TELEMETRY_TOPIC, ATTRIBUTES_TOPIC):
            try:
                data = msgspec.json.decode(packet.payload)
            except msgspec.DecodeError as exc:
                raise SessionClosedError("telemetry is not JSON") from exc
            if not isinstance(data, dict | list):
                raise SessionClosedError("telemetry is not a JSON object or array")
            self._journal.store(packet.topic, self._device.name, data)
        self._ack(packet)  # other topics are acknowledged and ignored, as ThingsBoard does
        return False

    def _on_provision_publish(self, packet: Publish) -> bool:
        journal = self._journal
        if packet.topic != REQUEST_TOPIC:
            self._ack(packet)
            raise SessionClosedError(f"provision session published to {packet.topic!r}")
        journal.count("provision_requests")
        name = requested_name(packet.payload)
        fault = self._faults.popleft() if self._faults else None
        if fault is ProvisionFault.DROP_REQUEST:
            journal.record(ProvisionRecord(self._connection, name, None, fault))
            return False
        try:
            result = self._registry.provision(packet.payload)
        except MalformedRequestError:
            # ThingsBoard's JSON adaptor throws: acknowledged, never answered, closed.
            journal.record(ProvisionRecord(self._connection, name, None, fault))
            self._ack(packet)
            raise
        device = result.device.name if result.device else None
        answered = fault is None and (
            RESPONSE_TOPIC in self._subscriptions or not self._spec.require_subscription
        )
        status = result.status if answered else None
        journal.record(ProvisionRecord(self._connection, name, status, fault, device))
        if fault is ProvisionFault.CLOSE_INSTEAD:
            return True
        self._schedule_close()
        if fault is ProvisionFault.LOSE_ANSWER:
            return False
        self._ack(packet)
        if answered:
            # Unsubscribed, ThingsBoard's default QoS for the topic is 1.
            qos = self._subscriptions.get(RESPONSE_TOPIC, MAX_QOS)
            packet_id = next(self._packet_ids) if qos else 0
            self._send(Publish(RESPONSE_TOPIC, result.payload, qos=qos, packet_id=packet_id))
            journal.count("provision_answers")
        return False

    def _schedule_close(self) -> None:
        close_at = asyncio.get_running_loop().time() + self._spec.close_after_answer_s
        self._close_at = close_at if self._close_at is None else min(self._close_at, close_at)
