"""The MQTT adapter against the ThingsBoard stand-in: the provision session as ThingsBoard
wants it, token checks, telemetry, and every network failure mapped to our codes."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.device.cloud.credentials import DeviceCredentials
from orchestrator.device.cloud.errors import CloudError, ErrorCode
from orchestrator.device.cloud.flow import Verdict
from orchestrator.device.cloud.messages import ProvisionRequest, decode_answer
from orchestrator.device.cloud.settings import Server
from orchestrator.device.cloud.thingsboard import check_token, device_link, provision_session
from orchestrator.sim.broker import free_port
from orchestrator.sim.thingsboard import (
    ConnectFault,
    ProvisionFault,
    ProvisionStatus,
    ThingsBoardStandIn,
)
from tests.device.cloud.conftest import KEY, SECRET

NAME = "thermal-camera-TEST01"
TOKEN = "tokenTOKENtoken12345"
TIMEOUT_S = 0.5


def server(tb: ThingsBoardStandIn) -> Server:
    return Server(host=tb.host, port=tb.port)


def request(secret: str = SECRET) -> ProvisionRequest:
    return ProvisionRequest(
        provision_device_key=KEY, provision_device_secret=secret, device_name=NAME, token=TOKEN
    )


async def all_closed(tb: ThingsBoardStandIn, *, timeout_s: float) -> None:
    """Wait until the stand-in serves no connection. Its `wait_until` wakes on the journal's
    notification, which comes just before a connection's task is dropped from
    `open_connections`, so this polls instead."""
    async with asyncio.timeout(timeout_s):
        while tb.open_connections:  # noqa: ASYNC110 - no event tells this change (docstring)
            await asyncio.sleep(0.01)


async def provision(tb: ThingsBoardStandIn, secret: str = SECRET) -> bytes:
    async with provision_session(server(tb), client_id=NAME, timeout_s=TIMEOUT_S) as session:
        await session.send(request(secret))
        return await session.answer()


async def test_the_session_subscribes_first_publishes_and_leaves_on_the_answer(
    tb: ThingsBoardStandIn,
) -> None:
    # The stand-in answers only a connection subscribed to /provision/response.
    answer = await provision(tb)
    assert decode_answer(answer, device_name=NAME).access_token == TOKEN
    assert tb.devices[NAME].credentials.token == TOKEN
    assert [(r.requested_name, r.status) for r in tb.provisions] == [
        (NAME, ProvisionStatus.SUCCESS)
    ]
    # ThingsBoard would hold the connection for 60 s; the device closes it at once.
    await all_closed(tb, timeout_s=2)
    assert tb.stats.provision_sessions == 1
    assert tb.stats.protocol_closes == 0


async def test_a_wrong_secret_is_answered_not_found(tb: ThingsBoardStandIn) -> None:
    answer = await provision(tb, secret="wrong")
    with pytest.raises(CloudError) as caught:
        decode_answer(answer, device_name=NAME)
    assert caught.value.code is ErrorCode.PROVISION_NOT_FOUND
    assert not tb.devices


async def test_a_token_check_tells_known_from_unknown_tokens(tb: ThingsBoardStandIn) -> None:
    tb.add_device(NAME, TOKEN)
    assert (
        await check_token(server(tb), TOKEN, client_id=NAME, timeout_s=TIMEOUT_S)
        is Verdict.ACCEPTED
    )
    assert (
        await check_token(server(tb), "unknown", client_id=NAME, timeout_s=TIMEOUT_S)
        is Verdict.REFUSED
    )
    assert tb.stats.device_sessions == 1
    assert tb.stats.refused_connects == 1
    await all_closed(tb, timeout_s=2)


async def test_nobody_listening_is_unreachable() -> None:
    closed = Server(host="127.0.0.1", port=free_port())
    with pytest.raises(CloudError) as caught:
        await check_token(closed, TOKEN, client_id=NAME, timeout_s=TIMEOUT_S)
    assert caught.value.code is ErrorCode.SERVER_UNREACHABLE
    with pytest.raises(CloudError) as caught:
        async with provision_session(closed, client_id=NAME, timeout_s=TIMEOUT_S):
            pass
    assert caught.value.code is ErrorCode.SERVER_UNREACHABLE


@pytest.mark.parametrize("fault", [ConnectFault.SILENT, ConnectFault.RESET])
async def test_a_server_that_never_acknowledges_connect_is_unreachable_in_bounded_time(
    tb: ThingsBoardStandIn, fault: ConnectFault
) -> None:
    tb.inject_connect_fault(fault)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(CloudError) as caught:
        await provision(tb)
    assert caught.value.code is ErrorCode.SERVER_UNREACHABLE
    assert loop.time() - started < TIMEOUT_S + 1.5
    assert not tb.provisions
    # paho's keepalive check closes the socket it left behind: nothing lingers.
    await all_closed(tb, timeout_s=3)


async def test_a_lost_answer_is_no_answer_and_the_device_exists(tb: ThingsBoardStandIn) -> None:
    tb.inject_provision_fault(ProvisionFault.LOSE_ANSWER)
    with pytest.raises(CloudError) as caught:
        await provision(tb)
    assert caught.value.code is ErrorCode.NO_ANSWER
    assert NAME in tb.devices


async def test_a_dropped_request_is_no_answer_and_nothing_exists(tb: ThingsBoardStandIn) -> None:
    tb.inject_provision_fault(ProvisionFault.DROP_REQUEST)
    with pytest.raises(CloudError) as caught:
        await provision(tb)
    assert caught.value.code is ErrorCode.NO_ANSWER
    assert not tb.devices


async def test_a_connection_closed_instead_of_an_answer_is_lost(tb: ThingsBoardStandIn) -> None:
    tb.inject_provision_fault(ProvisionFault.CLOSE_INSTEAD)
    with pytest.raises(CloudError) as caught:
        await provision(tb)
    assert caught.value.code in {ErrorCode.CONNECTION_LOST, ErrorCode.NO_ANSWER}
    assert NAME in tb.devices


async def test_the_device_link_publishes_telemetry(tb: ThingsBoardStandIn) -> None:
    tb.add_device(NAME, TOKEN)
    credentials = DeviceCredentials(device_name=NAME, access_token=TOKEN, server=server(tb))
    async with device_link(credentials, timeout_s=TIMEOUT_S) as link:
        await link.publish_telemetry({"max_temp_c": 36.6})
        await tb.wait_until(lambda: bool(tb.telemetry(NAME)))
    assert tb.telemetry(NAME) == ({"max_temp_c": 36.6},)


async def test_the_device_link_refused_says_provision_again(tb: ThingsBoardStandIn) -> None:
    credentials = DeviceCredentials(device_name=NAME, access_token=TOKEN, server=server(tb))
    with pytest.raises(CloudError) as caught:
        async with device_link(credentials, timeout_s=TIMEOUT_S):
            pass
    assert caught.value.code is ErrorCode.STORED_TOKEN_REFUSED
    assert TOKEN not in caught.value.message
