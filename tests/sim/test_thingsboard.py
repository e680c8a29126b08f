"""The ThingsBoard stand-in, driven by aiomqtt as a real device would drive ThingsBoard, plus
its pure parts: the MQTT 3.1.1 codec and the provisioning rules."""

from __future__ import annotations

import asyncio
import logging
import string
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiomqtt
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.sim.mqtt_wire import (
    MAX_REMAINING_LENGTH,
    ConnAck,
    Connect,
    Disconnect,
    Framer,
    MalformedPacketError,
    Packet,
    PingReq,
    PingResp,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    Will,
    decode_remaining_length,
    encode,
    encode_remaining_length,
)
from orchestrator.sim.thingsboard import (
    ConnectFault,
    CredentialsType,
    ProvisionFault,
    ProvisionMode,
    ProvisionProfile,
    ProvisionStatus,
    ThingsBoardSpec,
    ThingsBoardStandIn,
    thingsboard_standin,
)
from orchestrator.sim.thingsboard_registry import Credentials, MalformedRequestError, Registry
from orchestrator.sim.thingsboard_session import REQUEST_TOPIC, RESPONSE_TOPIC, TELEMETRY_TOPIC

log = logging.getLogger(__name__)

KEY, SECRET = "thermal-key", "thermal-secret"
WAIT_S = 5.0
NOT_FOUND = {"errorMsg": "Provision data was not found!", "status": "NOT_FOUND"}
FAILURE = {"errorMsg": "Failed to provision device!", "status": "FAILURE"}
ALPHANUMERIC = set(string.ascii_letters + string.digits)


def make_spec(**fields: Any) -> ThingsBoardSpec:
    return ThingsBoardSpec(profiles=(ProvisionProfile(key=KEY, secret=SECRET),), **fields)


def request(name: str | None = None, **fields: str) -> dict[str, str]:
    body = {"provisionDeviceKey": KEY, "provisionDeviceSecret": SECRET} | fields
    return body if name is None else body | {"deviceName": name}


@pytest.fixture
async def tb() -> AsyncIterator[ThingsBoardStandIn]:
    async with thingsboard_standin(make_spec()) as standin:
        yield standin


def provision_client(tb: ThingsBoardStandIn, **options: Any) -> aiomqtt.Client:
    return aiomqtt.Client(tb.host, tb.port, username="provision", timeout=WAIT_S, **options)


async def next_payload(client: aiomqtt.Client) -> Any:
    """The next message's payload as JSON (MqttError if the server closes first)."""
    async with asyncio.timeout(WAIT_S):
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            return msgspec.json.decode(message.payload)
    raise AssertionError("the message stream ended")


async def provision(tb: ThingsBoardStandIn, body: dict[str, str], *, qos: int = 1) -> Any:
    """Subscribe, publish, read the answer, disconnect: what a device does."""
    async with provision_client(tb) as client:
        await client.subscribe(RESPONSE_TOPIC, qos=qos)
        await client.publish(REQUEST_TOPIC, msgspec.json.encode(body), qos=qos)
        return await next_payload(client)


def granted_qos(codes: tuple[int, ...] | list[Any]) -> list[int]:
    """SUBACK return codes as numbers (paho hands out ReasonCode objects)."""
    return [code if isinstance(code, int) else int(code.value) for code in codes]


async def connect_code(tb: ThingsBoardStandIn, username: str, password: str | None = None) -> int:
    """The CONNACK return code on the wire for a CONNECT with these credentials."""
    reader, writer = await asyncio.open_connection(tb.host, tb.port)
    try:
        secret = None if password is None else password.encode()
        writer.write(encode(Connect(client_id="probe", username=username, password=secret)))
        async with asyncio.timeout(WAIT_S):
            received = await reader.read(4)
    finally:
        writer.close()
        await writer.wait_closed()
    if not received:
        raise ConnectionResetError("closed without CONNACK")
    (connack,) = list(Framer().feed(received))
    assert isinstance(connack, ConnAck)
    return connack.return_code


# --- provisioning over MQTT -----------------------------------------------------------------


async def test_subscribe_then_publish_gets_the_chosen_token(tb: ThingsBoardStandIn) -> None:
    async with provision_client(tb) as client:
        granted = await client.subscribe(RESPONSE_TOPIC, qos=1)
        await client.publish(
            REQUEST_TOPIC, msgspec.json.encode(request("cam-1", token="t1")), qos=1
        )
        async with asyncio.timeout(WAIT_S):
            message = await anext(aiter(client.messages))
    assert granted_qos(granted) == [1]
    # Byte for byte what ThingsBoard's JsonConverter writes, at the subscription's QoS.
    assert (
        message.payload
        == b'{"credentialsValue":"t1","credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}'
    )
    assert message.qos == 1
    device = tb.devices["cam-1"]
    assert device.credentials == Credentials.access_token("t1")
    assert device.profile == "default"
    assert "t1" not in repr(device)
    assert tb.provisions[0].status is ProvisionStatus.SUCCESS


async def test_the_server_generates_token_and_name_when_omitted(tb: ThingsBoardStandIn) -> None:
    answer = await provision(tb, request(), qos=0)
    assert answer["status"] == "SUCCESS"
    token = answer["credentialsValue"]
    assert len(token) == 20
    assert set(token) <= ALPHANUMERIC
    (name,) = tb.devices
    assert len(name) == 20
    assert set(name) <= ALPHANUMERIC
    assert tb.devices[name].credentials.token == token


@pytest.mark.parametrize(
    ("key", "secret"),
    [("unknown-key", SECRET), (KEY, "wrong-secret"), (KEY, ""), ("", SECRET), ("off-key", "s")],
    ids=["unknown key", "wrong secret", "empty secret", "empty key", "provisioning disabled"],
)
async def test_unknown_credentials_get_not_found(key: str, secret: str) -> None:
    disabled = ProvisionProfile(key="off-key", secret="s", mode=ProvisionMode.DISABLED, name="off")
    spec = ThingsBoardSpec(profiles=(ProvisionProfile(key=KEY, secret=SECRET), disabled))
    async with thingsboard_standin(spec) as tb:
        body = {"deviceName": "cam-1", "provisionDeviceKey": key, "provisionDeviceSecret": secret}
        assert await provision(tb, body) == NOT_FOUND
        assert not tb.devices


async def test_a_taken_name_and_a_blank_name_fail() -> None:
    async with thingsboard_standin(make_spec(devices={"cam-1": "old-token"})) as tb:
        assert await provision(tb, request("cam-1", token="new")) == FAILURE
        assert await provision(tb, request(" \t ")) == FAILURE
        assert tb.devices["cam-1"].credentials.token == "old-token"
        assert len(tb.devices) == 1


async def test_the_same_name_twice_fails_the_second_time(tb: ThingsBoardStandIn) -> None:
    # Not idempotent: a device that lost its answer cannot simply ask again.
    assert (await provision(tb, request("cam-1", token="t1")))["status"] == "SUCCESS"
    assert await provision(tb, request("cam-1", token="t1")) == FAILURE


async def test_a_request_missing_the_secret_is_never_answered(tb: ThingsBoardStandIn) -> None:
    async with provision_client(tb) as client:
        await client.subscribe(RESPONSE_TOPIC, qos=1)
        body = {"provisionDeviceKey": KEY, "deviceName": "cam-1"}
        await client.publish(REQUEST_TOPIC, msgspec.json.encode(body), qos=1)
        # The JSON adaptor throws: acknowledged, no answer, and the connection closes.
        with pytest.raises(aiomqtt.MqttError):
            await next_payload(client)
    assert tb.provisions[0].status is None
    assert not tb.devices
    assert tb.stats.provision_answers == 0


async def test_a_provision_session_publishing_elsewhere_is_closed(tb: ThingsBoardStandIn) -> None:
    async with provision_client(tb) as client:
        await client.subscribe(RESPONSE_TOPIC, qos=1)
        await client.publish(TELEMETRY_TOPIC, b'{"t":1}', qos=0)
        with pytest.raises(aiomqtt.MqttError):
            await next_payload(client)
    assert tb.stats.protocol_closes == 1
    assert not tb.telemetry("provision")


async def test_a_provision_session_may_subscribe_to_its_answer_only(tb: ThingsBoardStandIn) -> None:
    async with provision_client(tb) as client:
        refused = await client.subscribe("v1/devices/me/attributes", qos=1)
        assert granted_qos(refused) == [0x80]
        # Refused with SUBACK 0x80, as ThingsBoard does; the session goes on.
        await client.subscribe(RESPONSE_TOPIC, qos=1)
        await client.publish(REQUEST_TOPIC, msgspec.json.encode(request("cam-1")), qos=1)
        assert (await next_payload(client))["status"] == "SUCCESS"


async def test_the_answer_goes_to_the_requester_only(tb: ThingsBoardStandIn) -> None:
    async with provision_client(tb) as first, provision_client(tb) as second:
        await first.subscribe(RESPONSE_TOPIC, qos=1)
        await second.subscribe(RESPONSE_TOPIC, qos=1)
        await first.publish(REQUEST_TOPIC, msgspec.json.encode(request("cam-1", token="a")), qos=1)
        assert (await next_payload(first))["credentialsValue"] == "a"
        await second.publish(REQUEST_TOPIC, msgspec.json.encode(request("cam-2", token="b")), qos=1)
        # Answers on one connection arrive in order: had the first answer reached the second
        # client, it would come before this one.
        assert (await next_payload(second))["credentialsValue"] == "b"


async def test_an_unsubscribed_requester_gets_no_answer_by_default(tb: ThingsBoardStandIn) -> None:
    async with provision_client(tb) as client:
        await client.publish(REQUEST_TOPIC, msgspec.json.encode(request("cam-1")), qos=1)
        await tb.wait_until(lambda: len(tb.provisions) == 1)
    # The device exists all the same: the answer is what got lost.
    assert tb.provisions[0].status is None
    assert "cam-1" in tb.devices


async def test_thingsboard_answers_the_unsubscribed_at_qos_1_when_asked() -> None:
    async with (
        thingsboard_standin(make_spec(require_subscription=False)) as tb,
        provision_client(tb) as client,
    ):
        await client.publish(REQUEST_TOPIC, msgspec.json.encode(request("cam-1")), qos=0)
        async with asyncio.timeout(WAIT_S):
            message = await anext(aiter(client.messages))
        assert message.qos == 1
        assert str(message.topic) == RESPONSE_TOPIC


async def test_the_server_closes_a_provision_connection_after_answering() -> None:
    async with (
        thingsboard_standin(make_spec(close_after_answer_s=0.05)) as tb,
        provision_client(tb) as client,
    ):
        await client.subscribe(RESPONSE_TOPIC, qos=1)
        await client.publish(REQUEST_TOPIC, msgspec.json.encode(request("cam-1")), qos=1)
        assert (await next_payload(client))["status"] == "SUCCESS"
        with pytest.raises(aiomqtt.MqttError):
            await next_payload(client)
        await tb.wait_until(lambda: tb.open_connections == 0)


async def test_mqtt_basic_answers_an_object_and_authenticates(tb: ThingsBoardStandIn) -> None:
    body = request(
        "cam-1", credentialsType="MQTT_BASIC", clientId="cid", username="user", password="pw"
    )
    answer = await provision(tb, body)
    assert answer == {
        "credentialsValue": {"clientId": "cid", "userName": "user", "password": "pw"},
        "credentialsType": "MQTT_BASIC",
        "status": "SUCCESS",
    }
    assert tb.devices["cam-1"].credentials.type is CredentialsType.MQTT_BASIC
    async with aiomqtt.Client(
        tb.host, tb.port, identifier="cid", username="user", password="pw", timeout=WAIT_S
    ):
        pass
    assert tb.stats.device_sessions == 1


async def test_old_field_names_are_answered_when_asked() -> None:
    async with thingsboard_standin(make_spec(legacy_response_fields=True)) as tb:
        answer = await provision(tb, request("cam-1", token="t1"))
        assert answer == {
            "accessToken": "t1",
            "credentialsType": "ACCESS_TOKEN",
            "provisionDeviceStatus": "SUCCESS",
        }


async def test_pre_provisioned_devices_get_the_same_credentials_every_time() -> None:
    profile = ProvisionProfile(
        key=KEY,
        secret=SECRET,
        mode=ProvisionMode.CHECK_PRE_PROVISIONED_DEVICES,
        pre_provisioned={"cam-1": "fixed-token"},
    )
    async with thingsboard_standin(ThingsBoardSpec(profiles=(profile,))) as tb:
        first = await provision(tb, request("cam-1", token="ignored"))
        second = await provision(tb, request("cam-1"))
        assert first == second
        assert first["credentialsValue"] == "fixed-token"
        assert await provision(tb, request("cam-2")) == FAILURE
        assert set(tb.devices) == {"cam-1"}


async def test_newer_thingsboard_refuses_a_pre_provisioned_device_twice() -> None:
    profile = ProvisionProfile(
        key=KEY,
        secret=SECRET,
        mode=ProvisionMode.CHECK_PRE_PROVISIONED_DEVICES,
        pre_provisioned={"cam-1": "fixed-token"},
    )
    spec = ThingsBoardSpec(profiles=(profile,), repeat_pre_provisioned=False)
    async with thingsboard_standin(spec) as tb:
        assert (await provision(tb, request("cam-1")))["status"] == "SUCCESS"
        assert await provision(tb, request("cam-1")) == FAILURE


# --- device sessions ------------------------------------------------------------------------


async def test_a_known_token_connects_and_a_wrong_one_gets_code_5() -> None:
    async with thingsboard_standin(make_spec(devices={"cam-1": "good-token"})) as tb:
        async with aiomqtt.Client(
            tb.host, tb.port, username="good-token", password="ignored", timeout=WAIT_S
        ):
            pass
        with pytest.raises(aiomqtt.MqttCodeError, match="Not authorized"):
            async with aiomqtt.Client(tb.host, tb.port, username="bad-token", timeout=WAIT_S):
                pass
        # paho reports MQTT 5's 135 for it; on the wire it is MQTT 3.1.1's 5.
        assert await connect_code(tb, "bad-token") == 5
        assert await connect_code(tb, "good-token") == 0
        stats = tb.stats
        assert (stats.device_sessions, stats.refused_connects) == (2, 2)


async def test_telemetry_is_recorded_per_device() -> None:
    async with (
        thingsboard_standin(make_spec(devices={"cam-1": "good-token"})) as tb,
        aiomqtt.Client(tb.host, tb.port, username="good-token", timeout=WAIT_S) as client,
    ):
        await client.publish(TELEMETRY_TOPIC, b'{"temperature":21.5}', qos=1)
        await client.publish(TELEMETRY_TOPIC, b'[{"ts":1,"values":{"t":2}}]', qos=1)
        await client.publish("v1/devices/me/attributes", b'{"fw":"1.0"}', qos=1)
        assert tb.telemetry("cam-1") == ({"temperature": 21.5}, [{"ts": 1, "values": {"t": 2}}])
        assert tb.attributes("cam-1") == ({"fw": "1.0"},)
        assert tb.stats.telemetry_messages == 2


async def test_a_repeated_bad_ip_is_blocked_until_the_block_expires() -> None:
    now = [1000.0]
    spec = make_spec(
        devices={"cam-1": "good-token"},
        ip_rate_limit=True,
        max_wrong_credentials_per_ip=3,
        ip_block_s=60.0,
    )
    async with thingsboard_standin(spec, clock=lambda: now[0]) as tb:
        for _ in range(3):
            assert await connect_code(tb, "guess") == 5
        with pytest.raises(ConnectionResetError):
            await connect_code(tb, "good-token")
        assert tb.stats.blocked_connects == 1
        now[0] += 60.0
        assert await connect_code(tb, "good-token") == 0


# --- fault injection ------------------------------------------------------------------------


async def test_a_dropped_request_is_neither_processed_nor_answered(tb: ThingsBoardStandIn) -> None:
    tb.inject_provision_fault(ProvisionFault.DROP_REQUEST)
    async with provision_client(tb) as client:
        await client.subscribe(RESPONSE_TOPIC, qos=1)
        await client.publish(REQUEST_TOPIC, msgspec.json.encode(request("cam-1")), qos=0)
        await tb.wait_until(lambda: len(tb.provisions) == 1)
        assert not tb.devices
        await client.publish(REQUEST_TOPIC, msgspec.json.encode(request("cam-2")), qos=0)
        # The first thing to arrive answers the second request: the first got nothing.
        assert (await next_payload(client))["status"] == "SUCCESS"
    assert [record.fault for record in tb.provisions] == [ProvisionFault.DROP_REQUEST, None]
    assert set(tb.devices) == {"cam-2"}


async def test_a_lost_answer_is_recovered_by_confirming_the_token(tb: ThingsBoardStandIn) -> None:
    tb.inject_provision_fault(ProvisionFault.LOSE_ANSWER)
    async with provision_client(tb) as client:
        await client.subscribe(RESPONSE_TOPIC, qos=1)
        await client.publish(REQUEST_TOPIC, msgspec.json.encode(request("cam-1", token="mine")))
        await tb.wait_until(lambda: "cam-1" in tb.devices)
    assert tb.provisions[0].status is None
    assert await provision(tb, request("cam-1", token="mine")) == FAILURE
    assert await connect_code(tb, "mine") == 0


async def test_close_instead_of_answering(tb: ThingsBoardStandIn) -> None:
    tb.inject_provision_fault(ProvisionFault.CLOSE_INSTEAD)
    async with provision_client(tb) as client:
        await client.subscribe(RESPONSE_TOPIC, qos=1)
        await client.publish(REQUEST_TOPIC, msgspec.json.encode(request("cam-1", token="mine")))
        with pytest.raises(aiomqtt.MqttError):
            await next_payload(client)
    assert "cam-1" in tb.devices


async def test_connect_faults_and_a_refusing_listener(tb: ThingsBoardStandIn) -> None:
    tb.inject_connect_fault(ConnectFault.RESET, times=2)
    for _ in range(2):
        with pytest.raises(ConnectionResetError):
            await connect_code(tb, "provision")
    # aiomqtt ignores a close before CONNACK and waits for its own timeout.
    tb.inject_connect_fault(ConnectFault.RESET)
    with pytest.raises(aiomqtt.MqttError, match="timed out"):
        async with aiomqtt.Client(tb.host, tb.port, username="provision", timeout=0.2):
            pass
    await tb.refuse_connections()
    with pytest.raises(aiomqtt.MqttError):
        await provision(tb, request("cam-1"))
    await tb.accept_connections()
    tb.inject_connect_fault(ConnectFault.SILENT)
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(tb.host, tb.port, username="provision", timeout=0.2):
            pass
    assert (await provision(tb, request("cam-1")))["status"] == "SUCCESS"
    assert tb.stats.connections == 5  # the refused attempt never reached the stand-in


# --- load -----------------------------------------------------------------------------------


async def test_a_hundred_devices_register_concurrently(
    tb: ThingsBoardStandIn, record_property: Any
) -> None:
    count = 100

    async def register(index: int) -> Any:
        return await provision(tb, request(f"thermal-camera-{index:06d}", token=f"tok-{index}"))

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(register(index)) for index in range(count)]
    registered_s = time.perf_counter() - started
    async with asyncio.TaskGroup() as group:
        codes = [group.create_task(connect_code(tb, f"tok-{index}")) for index in range(count)]
    total_s = time.perf_counter() - started
    assert all(task.result()["status"] == "SUCCESS" for task in tasks)
    assert all(code.result() == 0 for code in codes)
    assert len(tb.devices) == count
    record_property("register_100_s", round(registered_s, 3))
    log.info("100 registrations in %.3f s, with token checks %.3f s", registered_s, total_s)
    assert registered_s < 10.0


# --- the provisioning rules, without a network ----------------------------------------------


def test_registry_rules_without_a_network() -> None:
    tokens = iter(["generated-1", "generated-2"])
    registry = Registry(
        (ProvisionProfile(key=KEY, secret=SECRET),),
        {"taken": "used-token"},
        new_secret=lambda: next(tokens),
    )

    def answer(body: Mapping[str, object]) -> Any:
        return msgspec.json.decode(registry.provision(msgspec.json.encode(body)).payload)

    # A token another device holds rolls the whole creation back.
    assert answer(request("cam-1", token="used-token")) == FAILURE
    assert "cam-1" not in registry.devices
    # Java's trim: surrounding control characters and spaces go, the rest stays.
    assert answer(request("\t cam-2 \n"))["credentialsValue"] == "generated-1"
    assert "cam-2" in registry.devices
    # Credential fields make ThingsBoard store the requested kind; an invalid one fails.
    assert answer(request("cam-3", credentialsType="MQTT_BASIC", password="p")) == FAILURE
    assert answer(request("cam-4", credentialsType="MQTT_BASIC", clientId="c", password="p")) == (
        FAILURE
    )
    assert answer(request("cam-5", credentialsType="ACCESS_TOKEN", username="u")) == FAILURE
    # Gson's getAsString accepts numbers for strings.
    assert answer(request("cam-6") | {"token": 12345})["credentialsValue"] == "12345"
    assert registry.authenticate("any", "used-token", None) is registry.devices["taken"]
    assert registry.authenticate("any", "nobody", None) is None


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[1, 2]",
        b'{"provisionDeviceKey": "k"}',
        b'{"provisionDeviceSecret": "s"}',
        b'{"provisionDeviceKey": {"a": 1}, "provisionDeviceSecret": "s"}',
        b'{"provisionDeviceKey": "k", "provisionDeviceSecret": null}',
        b'{"provisionDeviceKey": "k", "provisionDeviceSecret": "s", "credentialsType": "PSK"}',
    ],
)
def test_requests_thingsboard_cannot_parse_are_rejected(payload: bytes) -> None:
    registry = Registry((ProvisionProfile(key="k", secret="s"),))
    with pytest.raises(MalformedRequestError):
        registry.provision(payload)


def test_secrets_stay_out_of_reprs() -> None:
    profile = ProvisionProfile(key="the-key", secret="the-secret")
    credentials = Credentials(type=CredentialsType.MQTT_BASIC, username="u", password="pw")
    assert "the-secret" not in repr(profile)
    assert "the-key" not in repr(profile)
    assert "pw" not in repr(credentials)
    assert "the-secret" not in repr(Connect(client_id="c", username="u", password=b"the-secret"))


# --- the MQTT 3.1.1 codec -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "wire"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (2_097_151, b"\xff\xff\x7f"),
        (2_097_152, b"\x80\x80\x80\x01"),
        (MAX_REMAINING_LENGTH, b"\xff\xff\xff\x7f"),
    ],
)
def test_remaining_length_edges(length: int, wire: bytes) -> None:
    assert encode_remaining_length(length) == wire
    assert decode_remaining_length(b"\x30" + wire) == (length, len(wire))
    assert decode_remaining_length(b"\x30" + wire[:-1]) is None


def test_remaining_length_limits() -> None:
    with pytest.raises(ValueError, match="out of range"):
        encode_remaining_length(MAX_REMAINING_LENGTH + 1)
    with pytest.raises(MalformedPacketError):
        decode_remaining_length(b"\x30\xff\xff\xff\xff\x01")


@given(st.integers(min_value=0, max_value=MAX_REMAINING_LENGTH))
def test_remaining_length_round_trips(length: int) -> None:
    wire = encode_remaining_length(length)
    assert decode_remaining_length(b"\x30" + wire) == (length, len(wire))


PACKETS: list[Packet] = [
    Connect(client_id="c1", username="provision", keepalive_s=30),
    Connect(
        client_id="",
        username="u",
        password=b"p",
        clean_session=False,
        will=Will("w/t", b"gone", qos=1, retain=True),
    ),
    ConnAck(return_code=5),
    ConnAck(session_present=True),
    Publish("/provision/request", b'{"a":1}'),
    Publish("t", b"x" * 127, qos=1, packet_id=7, retain=True, dup=True),
    Publish("t", b"x" * (16_384 - 5), qos=1, packet_id=65535),
    PubAck(7),
    Subscribe(1, (("/provision/response", 1), ("a/+/b", 0))),
    SubAck(1, (1, 0x80)),
    Unsubscribe(2, ("a", "b")),
    UnsubAck(2),
    PingReq(),
    PingResp(),
    Disconnect(),
]


@pytest.mark.parametrize("packet", PACKETS, ids=lambda p: type(p).__name__)
def test_packets_round_trip(packet: Packet) -> None:
    assert list(Framer().feed(encode(packet))) == [packet]


def test_the_framer_reassembles_any_split() -> None:
    stream = b"".join(encode(packet) for packet in PACKETS)
    framer = Framer()
    assert [p for byte in stream for p in framer.feed(bytes([byte]))] == PACKETS
    assert framer.pending == 0
    assert list(Framer().feed(stream)) == PACKETS


@pytest.mark.parametrize(
    "wire",
    [
        b"\x00\x00",  # reserved type 0
        b"\xf0\x00",  # reserved type 15
        b"\x80\x06\x00\x01\x00\x01a\x00",  # SUBSCRIBE without its 0b0010 flags
        b"\x36\x05\x00\x01a\x00\x01",  # PUBLISH with QoS 3
        b"\x30\x03\x00\x01#",  # a wildcard in a PUBLISH topic
        b"\x32\x05\x00\x01a\x00\x00",  # QoS 1 with packet id 0
        b"\x82\x02\x00\x01",  # SUBSCRIBE without a filter
        b"\x82\x06\x00\x01\x00\x01a\x03",  # SUBSCRIBE asking QoS 3
        b"\xc0\x01\x00",  # PINGREQ with a body
        b"\x50\x02\x00\x01",  # PUBREC: no QoS 2 here
        b"\x10\x0c\x00\x04MQTT\x04\x40\x00\x3c\x00\x00",  # password flag without user name
        b"\x10\x0c\x00\x04MQTT\x04\x03\x00\x3c\x00\x00",  # reserved CONNECT flag
        b"\x30\x04\x00\x02\xc3\x28",  # a topic that is not UTF-8
        b"\x40\x01\x00",  # PUBACK cut short
    ],
)
def test_malformed_packets_are_refused(wire: bytes) -> None:
    with pytest.raises(MalformedPacketError):
        list(Framer().feed(wire))


def test_an_oversized_packet_is_refused_from_its_header() -> None:
    with pytest.raises(MalformedPacketError, match="over the limit"):
        list(Framer(max_packet_bytes=100).feed(b"\x30" + encode_remaining_length(101)))


async def test_a_malformed_packet_closes_the_connection(tb: ThingsBoardStandIn) -> None:
    reader, writer = await asyncio.open_connection(tb.host, tb.port)
    try:
        writer.write(encode(Connect(client_id="c", username="provision")) + b"\x36\x00")
        async with asyncio.timeout(WAIT_S):
            received = await reader.read()  # CONNACK, then EOF
        assert list(Framer().feed(received)) == [ConnAck()]
    finally:
        writer.close()
        await writer.wait_closed()
    await tb.wait_until(lambda: tb.stats.protocol_closes == 1)


async def test_a_wrong_protocol_level_gets_code_1(tb: ThingsBoardStandIn) -> None:
    reader, writer = await asyncio.open_connection(tb.host, tb.port)
    try:
        writer.write(encode(Connect(client_id="c", username="provision", protocol_level=5)))
        async with asyncio.timeout(WAIT_S):
            received = await reader.read()
        assert list(Framer().feed(received)) == [ConnAck(return_code=1)]
    finally:
        writer.close()
        await writer.wait_closed()


async def test_the_stand_in_closes_open_connections_on_exit() -> None:
    async with thingsboard_standin(make_spec()) as tb:
        reader, writer = await asyncio.open_connection(tb.host, tb.port)
        writer.write(encode(Connect(client_id="c", username="provision")))
        await tb.wait_until(lambda: tb.stats.provision_sessions == 1)
    try:
        async with asyncio.timeout(WAIT_S):
            assert list(Framer().feed(await reader.read())) == [ConnAck()]
    finally:
        writer.close()
        await writer.wait_closed()
