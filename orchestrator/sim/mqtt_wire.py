"""MQTT 3.1.1 packets and their wire form, without I/O: the subset a ThingsBoard stand-in
serves (QoS 0 and 1; no QoS 2 flow). `Framer` cuts a byte stream into packets; `encode`
turns a packet back into bytes. Anything malformed raises `MalformedPacketError`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum

MAX_REMAINING_LENGTH = 268_435_455
"""The largest remaining length four bytes can carry (MQTT 3.1.1 section 2.2.3)."""
SUBACK_FAILURE = 0x80
PROTOCOL_NAME = "MQTT"
PROTOCOL_LEVEL = 4


class MalformedPacketError(Exception):
    """Bytes that are not an MQTT 3.1.1 packet this codec serves: the connection must close."""


class PacketType(IntEnum):
    """The control packet type, the high nibble of the first byte."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14


class ConnectReturnCode(IntEnum):
    """CONNACK return codes of MQTT 3.1.1."""

    ACCEPTED = 0
    UNACCEPTABLE_PROTOCOL_VERSION = 1
    IDENTIFIER_REJECTED = 2
    SERVER_UNAVAILABLE = 3
    BAD_USERNAME_OR_PASSWORD = 4
    NOT_AUTHORIZED = 5


@dataclass(frozen=True, slots=True)
class Will:
    """A CONNECT's will message (parsed to validate the packet; the stand-in ignores it)."""

    topic: str
    message: bytes
    qos: int = 0
    retain: bool = False


@dataclass(frozen=True, slots=True)
class Connect:
    """CONNECT. `protocol_level` other than 4 still decodes, so the server can refuse it."""

    client_id: str
    username: str | None = None
    password: bytes | None = field(default=None, repr=False)
    keepalive_s: int = 60
    clean_session: bool = True
    will: Will | None = None
    protocol_name: str = PROTOCOL_NAME
    protocol_level: int = PROTOCOL_LEVEL


@dataclass(frozen=True, slots=True)
class ConnAck:
    """CONNACK."""

    return_code: int = ConnectReturnCode.ACCEPTED
    session_present: bool = False


@dataclass(frozen=True, slots=True)
class Publish:
    """PUBLISH; `packet_id` is 0 for QoS 0. Payloads can carry secrets: kept out of repr."""

    topic: str
    payload: bytes = field(default=b"", repr=False)
    qos: int = 0
    packet_id: int = 0
    retain: bool = False
    dup: bool = False


@dataclass(frozen=True, slots=True)
class PubAck:
    """PUBACK."""

    packet_id: int


@dataclass(frozen=True, slots=True)
class Subscribe:
    """SUBSCRIBE: (topic filter, requested QoS) pairs."""

    packet_id: int
    subscriptions: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class SubAck:
    """SUBACK: one granted QoS (or 0x80, failure) per requested filter."""

    packet_id: int
    return_codes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """UNSUBSCRIBE."""

    packet_id: int
    topics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UnsubAck:
    """UNSUBACK."""

    packet_id: int


@dataclass(frozen=True, slots=True)
class PingReq:
    """PINGREQ."""


@dataclass(frozen=True, slots=True)
class PingResp:
    """PINGRESP."""


@dataclass(frozen=True, slots=True)
class Disconnect:
    """DISCONNECT."""


Packet = (
    Connect
    | ConnAck
    | Publish
    | PubAck
    | Subscribe
    | SubAck
    | Unsubscribe
    | UnsubAck
    | PingReq
    | PingResp
    | Disconnect
)


# --- encoding ---------------------------------------------------------------------------------


def encode_remaining_length(length: int) -> bytes:
    """The variable-length encoding of a remaining length (1 to 4 bytes)."""
    if not 0 <= length <= MAX_REMAINING_LENGTH:
        raise ValueError(f"remaining length {length} out of range")
    out = bytearray()
    while True:
        digit, length = length % 128, length // 128
        out.append(digit | 0x80 if length else digit)
        if not length:
            return bytes(out)


def _string(text: str) -> bytes:
    return _binary(text.encode())


def _binary(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise ValueError("a string or binary field is longer than 65535 bytes")
    return len(data).to_bytes(2, "big") + data


def _frame(kind: PacketType, flags: int, body: bytes) -> bytes:
    return bytes([kind << 4 | flags]) + encode_remaining_length(len(body)) + body


def _encode_connect(packet: Connect) -> bytes:
    flags = 0x02 if packet.clean_session else 0
    payload = _string(packet.client_id)
    if packet.will is not None:
        flags |= 0x04 | packet.will.qos << 3 | (0x20 if packet.will.retain else 0)
        payload += _string(packet.will.topic) + _binary(packet.will.message)
    if packet.username is not None:
        flags |= 0x80
        payload += _string(packet.username)
    if packet.password is not None:
        flags |= 0x40
        payload += _binary(packet.password)
    header = (
        _string(packet.protocol_name)
        + bytes([packet.protocol_level, flags])
        + packet.keepalive_s.to_bytes(2, "big")
    )
    return _frame(PacketType.CONNECT, 0, header + payload)


def _encode_publish(packet: Publish) -> bytes:
    flags = (0x08 if packet.dup else 0) | packet.qos << 1 | (0x01 if packet.retain else 0)
    body = _string(packet.topic)
    if packet.qos:
        body += packet.packet_id.to_bytes(2, "big")
    return _frame(PacketType.PUBLISH, flags, body + packet.payload)


def _id(packet_id: int) -> bytes:
    return packet_id.to_bytes(2, "big")


def encode(packet: Packet) -> bytes:  # noqa: PLR0911 - one arm per packet type reads best
    """The wire form of `packet`."""
    match packet:
        case Connect():
            return _encode_connect(packet)
        case ConnAck(return_code=code, session_present=present):
            return _frame(PacketType.CONNACK, 0, bytes([int(present), code]))
        case Publish():
            return _encode_publish(packet)
        case PubAck(packet_id=pid):
            return _frame(PacketType.PUBACK, 0, _id(pid))
        case Subscribe(packet_id=pid, subscriptions=subs):
            body = b"".join(_string(topic) + bytes([qos]) for topic, qos in subs)
            return _frame(PacketType.SUBSCRIBE, 0x02, _id(pid) + body)
        case SubAck(packet_id=pid, return_codes=codes):
            return _frame(PacketType.SUBACK, 0, _id(pid) + bytes(codes))
        case Unsubscribe(packet_id=pid, topics=topics):
            body = b"".join(_string(topic) for topic in topics)
            return _frame(PacketType.UNSUBSCRIBE, 0x02, _id(pid) + body)
        case UnsubAck(packet_id=pid):
            return _frame(PacketType.UNSUBACK, 0, _id(pid))
        case PingReq():
            return _frame(PacketType.PINGREQ, 0, b"")
        case PingResp():
            return _frame(PacketType.PINGRESP, 0, b"")
        case Disconnect():
            return _frame(PacketType.DISCONNECT, 0, b"")


# --- decoding ---------------------------------------------------------------------------------


def decode_remaining_length(buffer: bytes | bytearray, start: int = 1) -> tuple[int, int] | None:
    """(remaining length, bytes it took) from `buffer[start:]`, or None while incomplete."""
    value = 0
    for index in range(4):
        if start + index >= len(buffer):
            return None
        byte = buffer[start + index]
        value += (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            return value, index + 1
    raise MalformedPacketError("remaining length longer than four bytes")


class _Reader:
    """Reads the fields of one packet body; running past its end is malformed."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self._at = 0

    def take(self, count: int) -> bytes:
        if self._at + count > len(self._body):
            raise MalformedPacketError("packet shorter than its fields")
        chunk = self._body[self._at : self._at + count]
        self._at += count
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def binary(self) -> bytes:
        return self.take(self.u16())

    def string(self) -> str:
        try:
            text = self.binary().decode()
        except UnicodeDecodeError as exc:
            raise MalformedPacketError("a string is not UTF-8") from exc
        if "\x00" in text:
            raise MalformedPacketError("a string contains U+0000")
        return text

    def rest(self) -> bytes:
        return self.take(len(self._body) - self._at)

    @property
    def done(self) -> bool:
        return self._at == len(self._body)

    def end(self) -> None:
        if not self.done:
            raise MalformedPacketError("packet longer than its fields")


def _packet_id(reader: _Reader) -> int:
    packet_id = reader.u16()
    if not packet_id:
        raise MalformedPacketError("packet identifier 0")
    return packet_id


def _decode_connect(reader: _Reader) -> Connect:
    protocol_name = reader.string()
    level, flags, keepalive_s = reader.byte(), reader.byte(), reader.u16()
    if flags & 0x01:
        raise MalformedPacketError("CONNECT reserved flag set")
    will_qos = flags >> 3 & 0x03
    has_will = bool(flags & 0x04)
    if will_qos == 3 or (not has_will and (will_qos or flags & 0x20)):
        raise MalformedPacketError("CONNECT will flags inconsistent")
    if flags & 0x40 and not flags & 0x80:
        raise MalformedPacketError("CONNECT password without user name")
    client_id = reader.string()
    will = None
    if has_will:
        will = Will(reader.string(), reader.binary(), will_qos, bool(flags & 0x20))
    username = reader.string() if flags & 0x80 else None
    password = reader.binary() if flags & 0x40 else None
    reader.end()
    return Connect(
        client_id=client_id,
        username=username,
        password=password,
        keepalive_s=keepalive_s,
        clean_session=bool(flags & 0x02),
        will=will,
        protocol_name=protocol_name,
        protocol_level=level,
    )


def _decode_publish(flags: int, reader: _Reader) -> Publish:
    qos = flags >> 1 & 0x03
    if qos == 3:
        raise MalformedPacketError("PUBLISH with QoS 3")
    topic = reader.string()
    if not topic or "+" in topic or "#" in topic:
        raise MalformedPacketError("PUBLISH topic empty or with a wildcard")
    packet_id = _packet_id(reader) if qos else 0
    return Publish(
        topic=topic,
        payload=reader.rest(),
        qos=qos,
        packet_id=packet_id,
        retain=bool(flags & 0x01),
        dup=bool(flags & 0x08),
    )


def _decode_subscribe(reader: _Reader) -> Subscribe:
    packet_id = _packet_id(reader)
    subscriptions = []
    while not reader.done:
        topic, qos = reader.string(), reader.byte()
        if qos > 2 or not topic:
            raise MalformedPacketError("SUBSCRIBE with an empty filter or a bad QoS byte")
        subscriptions.append((topic, qos))
    if not subscriptions:
        raise MalformedPacketError("SUBSCRIBE without a topic filter")
    return Subscribe(packet_id, tuple(subscriptions))


def _decode_unsubscribe(reader: _Reader) -> Unsubscribe:
    packet_id = _packet_id(reader)
    topics = []
    while not reader.done:
        topics.append(reader.string())
    if not topics:
        raise MalformedPacketError("UNSUBSCRIBE without a topic filter")
    return Unsubscribe(packet_id, tuple(topics))


def _id_only(reader: _Reader) -> int:
    packet_id = reader.u16()
    reader.end()
    return packet_id


_EMPTY: dict[PacketType, Packet] = {
    PacketType.PINGREQ: PingReq(),
    PacketType.PINGRESP: PingResp(),
    PacketType.DISCONNECT: Disconnect(),
}
_RESERVED_FLAGS = {PacketType.SUBSCRIBE: 0x02, PacketType.UNSUBSCRIBE: 0x02}


def decode(first_byte: int, body: bytes) -> Packet:  # noqa: PLR0911 - one arm per packet type
    """The packet whose fixed header starts with `first_byte` and whose body is `body`."""
    try:
        kind = PacketType(first_byte >> 4)
    except ValueError as exc:
        raise MalformedPacketError(f"reserved packet type {first_byte >> 4}") from exc
    flags = first_byte & 0x0F
    if kind is not PacketType.PUBLISH and flags != _RESERVED_FLAGS.get(kind, 0):
        raise MalformedPacketError(f"{kind.name} with flags {flags:#x}")
    reader = _Reader(body)
    match kind:
        case PacketType.CONNECT:
            return _decode_connect(reader)
        case PacketType.CONNACK:
            present, code = reader.byte(), reader.byte()
            reader.end()
            return ConnAck(return_code=code, session_present=bool(present & 0x01))
        case PacketType.PUBLISH:
            return _decode_publish(flags, reader)
        case PacketType.PUBACK:
            return PubAck(_id_only(reader))
        case PacketType.SUBSCRIBE:
            return _decode_subscribe(reader)
        case PacketType.SUBACK:
            return SubAck(reader.u16(), tuple(reader.rest()))
        case PacketType.UNSUBSCRIBE:
            return _decode_unsubscribe(reader)
        case PacketType.UNSUBACK:
            return UnsubAck(_id_only(reader))
        case PacketType.PINGREQ | PacketType.PINGRESP | PacketType.DISCONNECT:
            reader.end()
            return _EMPTY[kind]
        case _:
            raise MalformedPacketError(f"{kind.name} (QoS 2) is not served")


class Framer:
    """Cuts a byte stream into packets. A packet longer than `max_packet_bytes` is malformed
    as soon as its header says so, before its body is buffered."""

    def __init__(self, *, max_packet_bytes: int = MAX_REMAINING_LENGTH) -> None:
        self._buffer = bytearray()
        self._max = max_packet_bytes

    def feed(self, data: bytes) -> Iterator[Packet]:
        """The packets `data` completes, in order (an incomplete tail waits for more). Lazy:
        the packets before a malformed one come out before MalformedPacketError, so they can
        be answered first, as a streaming decoder would."""
        self._buffer += data
        while len(self._buffer) >= 2:
            header = decode_remaining_length(self._buffer)
            if header is None:
                return
            length, used = header
            if length > self._max:
                raise MalformedPacketError(f"packet of {length} bytes over the limit")
            end = 1 + used + length
            if len(self._buffer) < end:
                return
            first, body = self._buffer[0], bytes(self._buffer[1 + used : end])
            del self._buffer[:end]
            yield decode(first, body)

    @property
    def pending(self) -> int:
        """Bytes of an incomplete packet held back."""
        return len(self._buffer)
